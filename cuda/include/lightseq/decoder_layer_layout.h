// The decoder layer's config, parameters and the layout of what its forward
// keeps for the backward (one buffer), shared by cuda/layers/decoder_layer.cc
// and any twin. Header-only and CUDA-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "lightseq/encoder_layer_layout.h"  // Arena, Activation, DType

namespace lightseq {

struct DecoderLayerConfig {
  int64_t batch, tgt_len, mem_len, hidden, heads, ffn;
  bool pre_ln;
  Activation act;
  float attn_dropout, act_dropout, hidden_dropout;
  float epsilon;
};

// The twenty parameters (and, for the backward, their gradients), in the
// activation dtype, kernels row-major [in, out]: self-attention (1), encoder-
// decoder attention (2: query from the target, keys/values from the memory),
// FFN (3).
struct DecoderLayerParams {
  void *ln1_gamma, *ln1_beta, *qkv_kernel, *qkv_bias, *out_kernel, *out_bias;
  void *ln2_gamma, *ln2_beta, *q_kernel, *q_bias, *kv_kernel, *kv_bias, *cross_out_kernel,
      *cross_out_bias;
  void *ln3_gamma, *ln3_beta, *ffn1_kernel, *ffn1_bias, *ffn2_kernel, *ffn2_bias;
};

inline bool decoder_layer_config_valid(const DecoderLayerConfig& c) {
  auto rate = [](float r) { return r >= 0.f && r < 1.f; };
  return c.batch >= 1 && c.tgt_len >= 1 && c.mem_len >= 1 && c.hidden >= 1 && c.heads >= 1 &&
         c.hidden % c.heads == 0 && c.ffn >= 1 && c.epsilon > 0.f && rate(c.attn_dropout) &&
         rate(c.act_dropout) && rate(c.hidden_dropout);
}

struct DecoderDims {
  int64_t T, M, H, F, As, Ac;  // target tokens, memory tokens, hidden, ffn, self / cross scores
  size_t es;                   // element size
};

inline DecoderDims decoder_dims(DType dtype, const DecoderLayerConfig& c) {
  const int64_t bh = c.batch * c.heads;
  return {c.batch * c.tgt_len, c.batch * c.mem_len, c.hidden, c.ffn,
          bh * c.tgt_len * c.tgt_len, bh * c.tgt_len * c.mem_len,
          static_cast<size_t>(dtype_size(dtype))};
}

// Per block (1 self-attention, 2 encoder-decoder attention, 3 FFN): in*: the
// block's LayerNorm output (pre-LN); pre*: the closing LayerNorm's input
// (post-LN); x1 / x2: the outputs of blocks 1 / 2; m*, r*: float32 LayerNorm
// mean / rstd per token. qkv: self-attention Q, K, V with bias, heads split
// [3, B, heads, L, d]; cq: the cross query [B, heads, L, d]; ckv: the
// memory's keys and values [2, B, heads, mem_len, d]; *scores / *probs:
// before / after softmax + dropout; *ctx_m: attention context, heads merged;
// ffn_pre / ffn_act: FFN inner GEMM output before / after bias + activation +
// dropout.
struct DecoderSaved {
  void *in1, *qkv, *s_scores, *s_probs, *s_ctx_m, *pre1, *x1;
  void *in2, *cq, *ckv, *c_scores, *c_probs, *c_ctx_m, *pre2, *x2;
  void *in3, *ffn_pre, *ffn_act, *pre3;
  float *m1, *r1, *m2, *r2, *m3, *r3;
};

inline DecoderSaved carve_decoder_saved(Arena& a, const DecoderDims& d, bool pre_ln) {
  DecoderSaved s{};
  const size_t th = d.T * d.H * d.es;
  auto pre = [&](size_t n) { return pre_ln ? a.take(n) : nullptr; };
  auto post = [&](size_t n) { return pre_ln ? nullptr : a.take(n); };
  s.in1 = pre(th);
  s.qkv = a.take(3 * th);
  s.s_scores = a.take(d.As * d.es);
  s.s_probs = a.take(d.As * d.es);
  s.s_ctx_m = a.take(th);
  s.pre1 = post(th);
  s.x1 = a.take(th);
  s.in2 = pre(th);
  s.cq = a.take(th);
  s.ckv = a.take(2 * d.M * d.H * d.es);
  s.c_scores = a.take(d.Ac * d.es);
  s.c_probs = a.take(d.Ac * d.es);
  s.c_ctx_m = a.take(th);
  s.pre2 = post(th);
  s.x2 = a.take(th);
  s.in3 = pre(th);
  s.ffn_pre = a.take(d.T * d.F * d.es);
  s.ffn_act = a.take(d.T * d.F * d.es);
  s.pre3 = post(th);
  for (float** p : {&s.m1, &s.r1, &s.m2, &s.r2, &s.m3, &s.r3})
    *p = static_cast<float*>(a.take(4 * d.T));
  return s;
}

inline size_t decoder_layer_saved_bytes(DType dtype, const DecoderLayerConfig& c) {
  Arena a(nullptr);
  carve_decoder_saved(a, decoder_dims(dtype, c), c.pre_ln);
  return a.used();
}

}  // namespace lightseq
