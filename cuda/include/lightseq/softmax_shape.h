// Shape and visibility rule of the attention softmax (no CUDA headers: shared
// by the CUDA kernels, the CPU twin and the OpKernel).
#pragma once

#include <algorithm>
#include <cstdint>

#include "lightseq/host_device.h"

namespace lightseq {

struct SoftmaxShape {
  int64_t batch, heads, q_len, k_len;
};

// Keys 0 .. visible-1 of flat row `row` (over [batch, heads, q_len]) are
// visible: j < lengths[b] (clamped to [0, k_len]; all keys without lengths)
// and, if causal, j <= i + (k_len - q_len).
LIGHTSEQ_HD int64_t softmax_visible(const SoftmaxShape& s, const int32_t* lengths, bool causal,
                                    int64_t row) {
  const int64_t i = row % s.q_len;
  const int64_t b = row / (s.q_len * s.heads);
  int64_t v = s.k_len;
  if (lengths) {
    const int64_t l = lengths[b];
    v = l < 0 ? 0 : (l > s.k_len ? s.k_len : l);
  }
  if (causal) {
    const int64_t c = i + (s.k_len - s.q_len) + 1;
    v = c < v ? (c < 0 ? 0 : c) : v;
  }
  return v;
}

}  // namespace lightseq
