// The incremental decoder step's config and scratch layout (decoder_step.h),
// shared by cuda/layers/decoder_step.cc and its CPU twin. Header-only and
// CUDA-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "lightseq/decoder_layer_layout.h"  // Arena, Activation, DType, DecoderLayerParams
#include "lightseq/limits.h"

namespace lightseq {

struct DecoderStepConfig {
  int64_t batch, q_len, capacity, mem_len, hidden, heads, ffn;
  bool pre_ln;
  Activation act;
  float epsilon;
};

inline bool decoder_step_config_valid(const DecoderStepConfig& c, int64_t cache_len) {
  return c.batch >= 0 && c.q_len >= 1 && c.mem_len >= 0 && c.hidden >= 1 && c.heads >= 1 &&
         c.hidden % c.heads == 0 && c.hidden / c.heads <= kStepAttentionMaxHeadDim &&
         c.ffn >= 1 && c.epsilon > 0.f && cache_len >= 0 && cache_len + c.q_len <= c.capacity &&
         c.capacity <= kStepAttentionMaxKeys && c.mem_len <= kStepAttentionMaxKeys;
}

// Scratch of one step call (rows = batch * q_len): a block's LayerNorm
// output, the projections, the attention context and output, the residual
// stream after blocks 1 / 2, the post-LN sum, the FFN inner activations, and
// float32 LayerNorm statistics.
struct StepScratch {
  void *in, *qkv_raw, *q_raw, *ctx, *att_out, *x1, *x2, *pre, *ffn_pre, *ffn_act, *f_out;
  float *mean, *rstd;
};

inline StepScratch carve_decoder_step_scratch(Arena& a, DType dtype, const DecoderStepConfig& c) {
  const size_t es = dtype_size(dtype), rows = c.batch * c.q_len;
  const size_t th = rows * c.hidden * es, tf = rows * c.ffn * es;
  StepScratch s{};
  for (auto [p, bytes] : {std::pair{&s.in, th}, {&s.qkv_raw, 3 * th}, {&s.q_raw, th},
                          {&s.ctx, th}, {&s.att_out, th}, {&s.x1, th}, {&s.x2, th}, {&s.pre, th},
                          {&s.ffn_pre, tf}, {&s.ffn_act, tf}, {&s.f_out, th}})
    *p = a.take(bytes);
  s.mean = static_cast<float*>(a.take(4 * rows));
  s.rstd = static_cast<float*>(a.take(4 * rows));
  return s;
}

// Scratch bytes of one step call (each piece 256-byte aligned).
inline size_t decoder_step_workspace_bytes(DType dtype, const DecoderStepConfig& c) {
  Arena a(nullptr);
  carve_decoder_step_scratch(a, dtype, c);
  return a.used();
}

}  // namespace lightseq
