// Attention softmax: probs = dropout(softmax(scale * scores + mask)) over the
// last axis of scores [batch, heads, q_len, k_len], any k_len.
// mask: key j of batch b is visible when j < lengths[b] (lengths may be null:
// all keys; values are clamped to [0, k_len]) and, if causal, when
// j <= i + (k_len - q_len) (query i sits at absolute position
// k_len - q_len + i, which covers incremental decoding). Rows with no visible
// key give zeros, not NaN. Dropout masks as in dropout.h over the flat index.
// The backward recomputes the softmax from the scores (which the caller keeps
// anyway), so the forward saves nothing extra:
//   dscores = scale * p * (dp - sum_j dp_j p_j),  dp = dropout(dprobs).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"
#include "lightseq/softmax_shape.h"

namespace lightseq {

cudaError_t attn_softmax_fwd(DType dtype, const void* scores, const int32_t* lengths,
                             void* probs, SoftmaxShape shape, float scale, bool causal,
                             uint64_t seed, float rate, cudaStream_t stream);

cudaError_t attn_softmax_bwd(DType dtype, const void* dprobs, const void* scores,
                             const int32_t* lengths, void* dscores, SoftmaxShape shape,
                             float scale, bool causal, uint64_t seed, float rate,
                             cudaStream_t stream);

}  // namespace lightseq
