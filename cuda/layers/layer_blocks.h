// The block-level steps the whole layers (encoder_layer.cc, decoder_layer.cc)
// are made of, over the caller's buffers: an attention (scores, softmax +
// dropout, context with heads merged) and its backward; a block's closing
// (bias + dropout + residual, then LayerNorm for post-LN) and its backward;
// the gradient into a block's input. encoder_layer.cc walks through the
// backward step by step.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "layer_common.h"
#include "lightseq/bias_dropout_residual.h"
#include "lightseq/heads.h"
#include "lightseq/layer_norm.h"
#include "lightseq/softmax.h"

namespace lightseq {
namespace layers {

struct LayerBlocks {
  DType dtype;
  RowGemm gemm;
  cudaStream_t stream;
  int64_t batch, heads, len;  // sentences, heads, query positions per sentence
  int64_t T, H, dh, BH;       // tokens, hidden, head size, batch * heads
  size_t es;                  // element size
  bool pre_ln;
  float attn_dropout, hidden_dropout, epsilon, scale;
  // Scratch from the layer's workspace: the attention context [B*heads, len,
  // dh]; the backward's d_ctx (same shape, filled by the caller), d_probs /
  // d_scores (one attention's scores), a [T, H] temporary (the post-LN
  // closing's input gradient), zeros ([H], see clear_zeros) and the kernels'
  // backward workspace.
  void *ctx, *d_ctx, *d_probs, *d_scores, *tmp, *zeros, *kernel_ws;

  int hidden() const { return static_cast<int>(H); }
  HeadsShape heads_shape(int64_t splits, int64_t l) const {
    return {splits, batch, l, heads, dh};
  }
  const void* part(const void* base, int64_t rows, int i) const {  // Q/K/V slice of a split
    return static_cast<const char*>(base) + i * rows * H * es;
  }
  void* part(void* base, int64_t rows, int i) const {
    return static_cast<char*>(base) + i * rows * H * es;
  }
  // The backward's first step: zeros is the zero bias of add() and of the
  // plain head splits (split_heads without a bias).
  cudaError_t clear_zeros() const { return cudaMemsetAsync(zeros, 0, H * es, stream); }
  // a + b through the residual kernel (zero bias, no dropout).
  cudaError_t add(const void* a, const void* b, void* out) const {
    return bias_dropout_residual_fwd(dtype, a, zeros, b, out, T, H, 0, 0.f, stream);
  }
  // A projection's dbias: the column sums of its output gradient d [rows,
  // cols] (the residual kernel's backward at rate 0, writing no copy of d).
  cudaError_t bias_grad(const void* d, void* dbias, int64_t rows, int64_t cols) const {
    return bias_dropout_residual_bwd(dtype, d, nullptr, dbias, kernel_ws, rows, cols, 0, 0.f,
                                     stream);
  }
  cudaError_t ln_fwd(const void* x, const void* g, const void* b, void* y, float* m,
                     float* r) const {
    return layer_norm_fwd(dtype, x, g, b, y, m, r, T, hidden(), epsilon, stream);
  }

  // Attention over q [B*heads, len, dh] and k, v [B*heads, lk, dh]: scores,
  // probs (kept for the backward), the context merged into ctx_m [T, H].
  cudaError_t attend(int64_t lk, const void* q, const void* kk, const void* v,
                     const int32_t* lengths, bool causal, uint64_t sd, void* scores, void* probs,
                     void* ctx_m) const {
    const int64_t L = len;
    LS_TRY(gemm(false, true, L, lk, dh, q, dh, L * dh, kk, dh, lk * dh, scores, L * lk, BH));
    LS_TRY(attn_softmax_fwd(dtype, scores, lengths, probs, {batch, heads, L, lk}, scale, causal,
                            sd, attn_dropout, stream));
    LS_TRY(gemm(false, false, L, dh, lk, probs, lk, L * lk, v, dh, lk * dh, ctx, L * dh, BH));
    return merge_heads(dtype, ctx, ctx_m, heads_shape(1, L), stream);
  }
  // Its backward from d_ctx [B*heads, len, dh] to dq, dk, dv:
  // ctx = P V: dP = dctx V^T, dV = P^T dctx; scores = Q K^T: dQ = dS K, dK = dS^T Q.
  cudaError_t attend_bwd(int64_t lk, const void* q, const void* kk, const void* v,
                         const int32_t* lengths, bool causal, uint64_t sd, const void* scores,
                         const void* probs, void* dq, void* dk, void* dv) const {
    const int64_t L = len;
    LS_TRY(gemm(false, true, L, lk, dh, d_ctx, dh, L * dh, v, dh, lk * dh, d_probs, L * lk, BH));
    LS_TRY(gemm(true, false, lk, dh, L, probs, lk, L * lk, d_ctx, dh, L * dh, dv, lk * dh, BH));
    LS_TRY(attn_softmax_bwd(dtype, d_probs, scores, lengths, d_scores, {batch, heads, L, lk},
                            scale, causal, sd, attn_dropout, stream));
    LS_TRY(gemm(false, false, L, dh, lk, d_scores, lk, L * lk, kk, dh, lk * dh, dq, L * dh, BH));
    return gemm(true, false, lk, dh, L, d_scores, lk, L * lk, q, dh, L * dh, dk, lk * dh, BH);
  }
  // Closing a block: pre-LN out = residual + drop(raw + bias); post-LN
  // pre = that, out = LN(pre).
  cudaError_t close(const void* raw, const void* bias, const void* residual, uint64_t sd,
                    void* pre, void* out, const void* g, const void* b, float* m,
                    float* r) const {
    if (pre_ln)
      return bias_dropout_residual_fwd(dtype, raw, bias, residual, out, T, H, sd, hidden_dropout,
                                       stream);
    LS_TRY(bias_dropout_residual_fwd(dtype, raw, bias, residual, pre, T, H, sd, hidden_dropout,
                                     stream));
    return ln_fwd(pre, g, b, out, m, r);
  }
  // Backward of close() down to d(raw) and dbias; *d_pre: the gradient at
  // the residual sum (d_out itself for pre-LN, tmp for post-LN).
  cudaError_t close_bwd(const void* d_out, const void* pre, const float* m, const float* r,
                        const void* g, void* dg, void* db, uint64_t sd, void* d_raw, void* dbias,
                        const void** d_pre) const {
    *d_pre = d_out;
    if (!pre_ln) {
      LS_TRY(layer_norm_bwd(dtype, d_out, pre, m, r, g, tmp, nullptr, dg, db, kernel_ws, T,
                            hidden(), stream));
      *d_pre = tmp;
    }
    return bias_dropout_residual_bwd(dtype, *d_pre, d_raw, dbias, kernel_ws, T, H, sd,
                                     hidden_dropout, stream);
  }
  // Gradient into a block's input from d(its GEMM input) d_in: pre-LN adds
  // LN'(d_in) to the residual path d_res (in the LayerNorm backward's pass);
  // post-LN adds d_in to d_res.
  cudaError_t into_input(const void* d_in, const void* input, const float* m, const float* r,
                         const void* g, void* dg, void* db, const void* d_res, void* out) const {
    if (!pre_ln) return add(d_in, d_res, out);
    return layer_norm_bwd(dtype, d_in, input, m, r, g, out, d_res, dg, db, kernel_ws, T,
                          hidden(), stream);
  }
};

// The blocks of a layer of config `c` (batch, heads, hidden, pre_ln, rates,
// epsilon) over `len` query positions per sentence, with the attention
// scratch `k` of its workspace (ctx, d_ctx, d_probs, d_scores, tmp, zeros,
// kernel_ws).
template <typename Config, typename Scratch>
LayerBlocks blocks_of(DType dtype, const Config& c, int64_t len, const Scratch& k,
                      const Gemm& gemm, cudaStream_t stream) {
  const int64_t dh = c.hidden / c.heads;
  return LayerBlocks{dtype, RowGemm{gemm, dtype}, stream,
                     c.batch, c.heads, len,
                     c.batch * len, c.hidden, dh, c.batch * c.heads,
                     static_cast<size_t>(dtype_size(dtype)),
                     c.pre_ln, c.attn_dropout, c.hidden_dropout, c.epsilon,
                     1.f / std::sqrt(static_cast<float>(dh)),
                     k.ctx, k.d_ctx, k.d_probs, k.d_scores, k.tmp, k.zeros, k.kernel_ws};
}

}  // namespace layers
}  // namespace lightseq
