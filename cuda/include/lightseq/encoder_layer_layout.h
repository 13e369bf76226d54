// The encoder layer's config, parameters and the layout of what its forward
// keeps for the backward (one buffer): shared by cuda/layers/encoder_layer.cc
// and the CPU twin, so the TensorFlow op's `saved` output means the same bytes
// on both devices. Header-only and CUDA-free (CPU-only builds use it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "lightseq/activation.h"
#include "lightseq/dtype.h"

namespace lightseq {

struct EncoderLayerConfig {
  int64_t batch, seq_len, hidden, heads, ffn;
  bool pre_ln;
  Activation act;
  float attn_dropout, act_dropout, hidden_dropout;
  float epsilon;
};

// The twelve parameters (and, for the backward, their gradients), in the
// activation dtype, kernels row-major [in, out].
struct EncoderLayerParams {
  void *ln1_gamma, *ln1_beta, *qkv_kernel, *qkv_bias, *out_kernel, *out_bias;
  void *ln2_gamma, *ln2_beta, *ffn1_kernel, *ffn1_bias, *ffn2_kernel, *ffn2_bias;
};

inline bool encoder_layer_config_valid(const EncoderLayerConfig& c) {
  auto rate = [](float r) { return r >= 0.f && r < 1.f; };
  return c.batch >= 1 && c.seq_len >= 1 && c.hidden >= 1 && c.heads >= 1 &&
         c.hidden % c.heads == 0 && c.ffn >= 1 && c.epsilon > 0.f && rate(c.attn_dropout) &&
         rate(c.act_dropout) && rate(c.hidden_dropout);
}

// Hands out 256-byte aligned pieces of one buffer; with a null base it only
// counts, which is how buffers are sized.
class Arena {
 public:
  explicit Arena(void* base) : base_(static_cast<char*>(base)) {}
  void* take(size_t bytes) {
    char* p = base_ ? base_ + used_ : nullptr;
    used_ += (bytes + 255) & ~size_t{255};
    return p;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

struct EncoderDims {
  int64_t T, H, F, A;  // tokens, hidden, ffn, attention scores (B * heads * L * L)
  size_t es;           // element size
};

inline EncoderDims encoder_dims(DType dtype, const EncoderLayerConfig& c) {
  return {c.batch * c.seq_len, c.hidden, c.ffn, c.batch * c.heads * c.seq_len * c.seq_len,
          static_cast<size_t>(dtype_size(dtype))};
}

// Pointers into the saved buffer. a_in: LN1(x) (pre-LN); qkv: Q, K, V with
// bias, split into heads [3, B, heads, L, d]; scores: Q K^T before the
// softmax; probs: after softmax + dropout; ctx_m: attention context, heads
// merged [T, H]; x1: the attention block's output; pre1 / pre2: the inputs of
// the closing LayerNorms (post-LN); ffn_in: LN2(x1) (pre-LN); ffn_pre /
// ffn_act: the FFN's inner GEMM output before / after bias + activation +
// dropout; m1, r1, m2, r2: float32 LayerNorm mean / rstd per token.
struct EncoderSaved {
  void *a_in, *qkv, *scores, *probs, *ctx_m, *x1, *pre1, *ffn_in, *ffn_pre, *ffn_act, *pre2;
  float *m1, *r1, *m2, *r2;
};

inline EncoderSaved carve_encoder_saved(Arena& a, const EncoderDims& d, bool pre_ln) {
  EncoderSaved s{};
  const size_t th = d.T * d.H * d.es;
  s.a_in = pre_ln ? a.take(th) : nullptr;
  s.qkv = a.take(3 * th);
  s.scores = a.take(d.A * d.es);
  s.probs = a.take(d.A * d.es);
  s.ctx_m = a.take(th);
  s.x1 = a.take(th);
  s.pre1 = pre_ln ? nullptr : a.take(th);
  s.ffn_in = pre_ln ? a.take(th) : nullptr;
  s.ffn_pre = a.take(d.T * d.F * d.es);
  s.ffn_act = a.take(d.T * d.F * d.es);
  s.pre2 = pre_ln ? nullptr : a.take(th);
  for (float** p : {&s.m1, &s.r1, &s.m2, &s.r2}) *p = static_cast<float*>(a.take(4 * d.T));
  return s;
}

inline size_t encoder_layer_saved_bytes(DType dtype, const EncoderLayerConfig& c) {
  Arena a(nullptr);
  carve_encoder_saved(a, encoder_dims(dtype, c), c.pre_ln);
  return a.used();
}

}  // namespace lightseq
