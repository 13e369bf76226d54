// Shape of the decoding attention (step_attention.h), and its limits (no
// CUDA headers: shared with the CPU twin and the OpKernels' checks).
#pragma once

#include <cstdint>

#include "lightseq/limits.h"

namespace lightseq {

struct StepAttentionShape {
  int64_t batch, q_len, heads, head_dim;
};

inline bool step_attention_shape_valid(const StepAttentionShape& s, int64_t keys) {
  return s.batch >= 0 && s.q_len >= 1 && s.heads >= 1 && s.head_dim >= 1 &&
         s.head_dim <= kStepAttentionMaxHeadDim && keys >= 0 && keys <= kStepAttentionMaxKeys;
}

}  // namespace lightseq
