// The sinusoidal position signal of NeurST's PositionEmbeddingWrapper
// (tensor2tensor's add_timing_signal with min/max timescale 1 / 1e4), shared
// by the CUDA kernel and the CPU twin (host + device code). For hidden size H,
// n = H / 2 timescales and position p:
//   signal[c]     = sin(p * inv[c]),  c < n
//   signal[n + c] = cos(p * inv[c]),  c < n
//   signal[H - 1] = 0 when H is odd,
//   inv[c] = exp(c * -(log(1e4) / (n - 1)))   (inv[0] = 1 when n == 1).
// Float32 in the same order of operations as NeurST's float32 graph
// (log increment rounded to float, then divided in float).
#pragma once

#include <cmath>
#include <cstdint>

#include "lightseq/host_device.h"

namespace lightseq {

// log(1e4) rounded to float, as NeurST's math.log(...) / tf.cast(n - 1, float32) sees it.
constexpr float kLogMaxTimescale = 9.21034037198f;

LIGHTSEQ_HD float sinusoid_log_increment(int64_t hidden) {
  const int64_t n = hidden / 2;
  return n > 1 ? kLogMaxTimescale / static_cast<float>(n - 1) : 0.f;
}

// signal[col] at `position`; log_inc = sinusoid_log_increment(hidden).
LIGHTSEQ_HD float sinusoid(int64_t position, int64_t col, int64_t hidden, float log_inc) {
  const int64_t n = hidden / 2;
  if (col >= 2 * n) return 0.f;
  const int64_t c = col < n ? col : col - n;
  const float inv = expf(static_cast<float>(c) * -log_inc);
  const float arg = static_cast<float>(position) * inv;
  return col < n ? sinf(arg) : cosf(arg);
}

}  // namespace lightseq
