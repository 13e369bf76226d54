// Encoder layer orchestration: GEMMs through the caller's lightseq::Gemm
// (float32 accumulation) between the fused kernels; every buffer comes from
// the caller's `saved` and `workspace` (see encoder_layer.h for the math and
// the dropout streams).
#include "lightseq/encoder_layer.h"

#include <algorithm>
#include <cmath>

#include "lightseq/bias_act_dropout.h"
#include "lightseq/bias_dropout_residual.h"
#include "lightseq/heads.h"
#include "lightseq/layer_norm.h"
#include "lightseq/softmax.h"
#include "layer_common.h"

namespace lightseq {
namespace {

using Dims = EncoderDims;
using Saved = EncoderSaved;
using layers::RowGemm;

// Scratch of both directions (the backward's superset).
struct Scratch {
  void *qkv_raw, *ctx, *att_out, *f_out;                  // forward
  void *d_fout, *d_act, *d_ffpre, *d_ffin, *dx1, *tmp;   // backward
  void *d_att, *d_ctxm, *d_ctx, *d_probs, *d_scores, *dqkv, *dqkv_raw, *d_ain, *zeros;
  void* kernel_ws;  // LayerNorm / dropout-family backward workspaces (one at a time)
  size_t kernel_ws_bytes;
};

Scratch carve_scratch(Arena& a, DType dtype, const Dims& d) {
  Scratch s{};
  const size_t th = d.T * d.H * d.es, tf = d.T * d.F * d.es;
  s.qkv_raw = a.take(3 * th);
  s.ctx = a.take(th);
  s.att_out = a.take(th);
  s.f_out = a.take(th);
  s.d_fout = a.take(th);
  s.d_act = a.take(tf);
  s.d_ffpre = a.take(tf);
  s.d_ffin = a.take(th);
  s.dx1 = a.take(th);
  s.tmp = a.take(3 * th);
  s.d_att = a.take(th);
  s.d_ctxm = a.take(th);
  s.d_ctx = a.take(th);
  s.d_probs = a.take(d.A * d.es);
  s.d_scores = a.take(d.A * d.es);
  s.dqkv = a.take(3 * th);
  s.dqkv_raw = a.take(3 * th);
  s.d_ain = a.take(th);
  s.zeros = a.take(std::max({3 * d.H, d.F}) * d.es);
  s.kernel_ws_bytes = std::max(
      {layer_norm_bwd_workspace_bytes(dtype, d.T, static_cast<int>(d.H)),
       bias_dropout_residual_bwd_workspace_bytes(dtype, d.T, 3 * d.H),
       bias_act_dropout_bwd_workspace_bytes(dtype, d.T, d.F), size_t{16}});
  s.kernel_ws = a.take(s.kernel_ws_bytes);
  return s;
}

// Everything both directions derive from the config and the two buffers.
struct Plan {
  Dims d;
  Saved s;
  Scratch k;
  RowGemm gemm;
  int H;
  int64_t T, L, dh, BH;  // tokens, length, head size, batch * heads
  SoftmaxShape sm;
  float scale;           // softmax scale 1 / sqrt(head size)
};

Plan make_plan(DType dtype, const EncoderLayerConfig& c, void* saved, void* workspace,
               const Gemm& gemm) {
  const Dims d = encoder_dims(dtype, c);
  Arena sa(saved), wa(workspace);
  const int64_t dh = c.hidden / c.heads;
  return Plan{d, carve_encoder_saved(sa, d, c.pre_ln), carve_scratch(wa, dtype, d),
              RowGemm{gemm, dtype}, static_cast<int>(d.H), d.T, c.seq_len, dh,
              c.batch * c.heads, SoftmaxShape{c.batch, c.heads, c.seq_len, c.seq_len},
              1.f / sqrtf(static_cast<float>(dh))};
}

}  // namespace

size_t encoder_layer_workspace_bytes(DType dtype, const EncoderLayerConfig& c) {
  Arena a(nullptr);
  carve_scratch(a, dtype, encoder_dims(dtype, c));
  return a.used();
}

cudaError_t encoder_layer_fwd(DType dtype, const EncoderLayerConfig& c,
                              const EncoderLayerParams& w, const void* x,
                              const int32_t* lengths, void* y, uint64_t seed, void* saved,
                              void* workspace, const Gemm& backend, cudaStream_t stream) {
  if (!encoder_layer_config_valid(c)) return cudaErrorInvalidValue;
  const Plan p = make_plan(dtype, c, saved, workspace, backend);
  const auto& [d, s, k, gemm, H, T, L, dh, BH, sm, scale] = p;
  const HeadsShape qkv_shape{3, c.batch, c.seq_len, c.heads, dh};

  // Self-attention block.
  const void* a_in = x;
  if (c.pre_ln) {
    LS_TRY(layer_norm_fwd(dtype, x, w.ln1_gamma, w.ln1_beta, s.a_in, s.m1, s.r1, T, H,
                          c.epsilon, stream));
    a_in = s.a_in;
  }
  LS_TRY(gemm(false, false, T, 3 * d.H, d.H, a_in, d.H, 0, w.qkv_kernel, 3 * d.H, 0, k.qkv_raw,
              0));
  LS_TRY(split_heads(dtype, k.qkv_raw, w.qkv_bias, s.qkv, qkv_shape, stream));
  const char* qkv = static_cast<const char*>(s.qkv);
  const void* q = qkv;
  const void* kk = qkv + T * d.H * d.es;
  const void* v = qkv + 2 * T * d.H * d.es;
  // scores[bh] = Q[bh] K[bh]^T: [L, dh] x [dh, L].
  LS_TRY(gemm(false, true, L, L, dh, q, dh, L * dh, kk, dh, L * dh, s.scores, L * L, BH));
  LS_TRY(attn_softmax_fwd(dtype, s.scores, lengths, s.probs, sm, scale, false, seed + 0,
                          c.attn_dropout, stream));
  LS_TRY(gemm(false, false, L, dh, L, s.probs, L, L * L, v, dh, L * dh, k.ctx, L * dh, BH));
  LS_TRY(merge_heads(dtype, k.ctx, s.ctx_m, HeadsShape{1, c.batch, c.seq_len, c.heads, dh},
                     stream));
  LS_TRY(gemm(false, false, T, d.H, d.H, s.ctx_m, d.H, 0, w.out_kernel, d.H, 0, k.att_out, 0));
  if (c.pre_ln) {
    LS_TRY(bias_dropout_residual_fwd(dtype, k.att_out, w.out_bias, x, s.x1, T, d.H, seed + 1,
                                     c.hidden_dropout, stream));
  } else {
    LS_TRY(bias_dropout_residual_fwd(dtype, k.att_out, w.out_bias, x, s.pre1, T, d.H, seed + 1,
                                     c.hidden_dropout, stream));
    LS_TRY(layer_norm_fwd(dtype, s.pre1, w.ln1_gamma, w.ln1_beta, s.x1, s.m1, s.r1, T, H,
                          c.epsilon, stream));
  }

  // FFN block.
  const void* f_in = s.x1;
  if (c.pre_ln) {
    LS_TRY(layer_norm_fwd(dtype, s.x1, w.ln2_gamma, w.ln2_beta, s.ffn_in, s.m2, s.r2, T, H,
                          c.epsilon, stream));
    f_in = s.ffn_in;
  }
  LS_TRY(gemm(false, false, T, d.F, d.H, f_in, d.H, 0, w.ffn1_kernel, d.F, 0, s.ffn_pre, 0));
  LS_TRY(bias_act_dropout_fwd(dtype, c.act, s.ffn_pre, w.ffn1_bias, s.ffn_act, T, d.F, seed + 2,
                              c.act_dropout, stream));
  LS_TRY(gemm(false, false, T, d.H, d.F, s.ffn_act, d.F, 0, w.ffn2_kernel, d.H, 0, k.f_out, 0));
  if (c.pre_ln)
    return bias_dropout_residual_fwd(dtype, k.f_out, w.ffn2_bias, s.x1, y, T, d.H, seed + 3,
                                     c.hidden_dropout, stream);
  LS_TRY(bias_dropout_residual_fwd(dtype, k.f_out, w.ffn2_bias, s.x1, s.pre2, T, d.H, seed + 3,
                                   c.hidden_dropout, stream));
  return layer_norm_fwd(dtype, s.pre2, w.ln2_gamma, w.ln2_beta, y, s.m2, s.r2, T, H, c.epsilon,
                        stream);
}

cudaError_t encoder_layer_bwd(DType dtype, const EncoderLayerConfig& c,
                              const EncoderLayerParams& w, const void* x,
                              const int32_t* lengths, const void* dy, void* dx,
                              const EncoderLayerParams& g, uint64_t seed, const void* saved,
                              void* workspace, const Gemm& backend, cudaStream_t stream) {
  if (!encoder_layer_config_valid(c)) return cudaErrorInvalidValue;
  const Plan p = make_plan(dtype, c, const_cast<void*>(saved), workspace, backend);
  const auto& [d, s, k, gemm, H, T, L, dh, BH, sm, scale] = p;
  void* ws = k.kernel_ws;
  LS_TRY(cudaMemsetAsync(k.zeros, 0, std::max(3 * d.H, d.F) * d.es, stream));
  // a + b through the residual kernel (zero bias, no dropout).
  auto add = [&](const void* a, const void* b, void* out, int64_t cols) {
    return bias_dropout_residual_fwd(dtype, a, k.zeros, b, out, T, cols, 0, 0.f, stream);
  };

  // Post-LN: the gradient through the block's closing LayerNorm (into tmp).
  auto through_post_ln = [&](const void* d_out, const void* pre, const float* mean,
                             const float* rstd, const void* gamma, void* dgamma, void* dbeta,
                             const void** d_pre) {
    *d_pre = d_out;
    if (c.pre_ln) return cudaSuccess;
    *d_pre = k.tmp;
    return layer_norm_bwd(dtype, d_out, pre, mean, rstd, gamma, k.tmp, dgamma, dbeta, ws, T, H,
                          stream);
  };

  // FFN block: d(pre2) -> d_fout, dx1.
  const void* d_pre2;
  LS_TRY(through_post_ln(dy, s.pre2, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma, g.ln2_beta, &d_pre2));
  LS_TRY(bias_dropout_residual_bwd(dtype, d_pre2, k.d_fout, g.ffn2_bias, ws, T, d.H, seed + 3,
                                   c.hidden_dropout, stream));
  LS_TRY(gemm(true, false, d.F, d.H, T, s.ffn_act, d.F, 0, k.d_fout, d.H, 0, g.ffn2_kernel, 0));
  LS_TRY(gemm(false, true, T, d.F, d.H, k.d_fout, d.H, 0, w.ffn2_kernel, d.H, 0, k.d_act, 0));
  LS_TRY(bias_act_dropout_bwd(dtype, c.act, k.d_act, s.ffn_pre, w.ffn1_bias, k.d_ffpre,
                              g.ffn1_bias, ws, T, d.F, seed + 2, c.act_dropout, stream));
  const void* f_in = c.pre_ln ? s.ffn_in : s.x1;
  LS_TRY(gemm(true, false, d.H, d.F, T, f_in, d.H, 0, k.d_ffpre, d.F, 0, g.ffn1_kernel, 0));
  LS_TRY(gemm(false, true, T, d.H, d.F, k.d_ffpre, d.F, 0, w.ffn1_kernel, d.F, 0, k.d_ffin, 0));
  if (c.pre_ln) {  // y = x1 + ffn(LN2(x1)): dx1 = dy + LN2'(d_ffin)
    LS_TRY(layer_norm_bwd(dtype, k.d_ffin, s.x1, s.m2, s.r2, w.ln2_gamma, k.tmp, g.ln2_gamma,
                          g.ln2_beta, ws, T, H, stream));
    LS_TRY(add(k.tmp, dy, k.dx1, d.H));
  } else {  // pre2 = x1 + ffn(x1): dx1 = d_pre2 + d_ffin
    LS_TRY(add(k.d_ffin, d_pre2, k.dx1, d.H));
  }

  // Attention block: dx1 -> d(pre1) -> d_att, dx.
  const void* d_pre1;
  LS_TRY(through_post_ln(k.dx1, s.pre1, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma, g.ln1_beta,
                         &d_pre1));
  LS_TRY(bias_dropout_residual_bwd(dtype, d_pre1, k.d_att, g.out_bias, ws, T, d.H, seed + 1,
                                   c.hidden_dropout, stream));
  LS_TRY(gemm(true, false, d.H, d.H, T, s.ctx_m, d.H, 0, k.d_att, d.H, 0, g.out_kernel, 0));
  LS_TRY(gemm(false, true, T, d.H, d.H, k.d_att, d.H, 0, w.out_kernel, d.H, 0, k.d_ctxm, 0));
  LS_TRY(split_heads(dtype, k.d_ctxm, k.zeros, k.d_ctx,
                     HeadsShape{1, c.batch, c.seq_len, c.heads, dh}, stream));
  const char* qkv = static_cast<const char*>(s.qkv);
  const void* q = qkv;
  const void* kk = qkv + T * d.H * d.es;
  const void* v = qkv + 2 * T * d.H * d.es;
  char* dqkv = static_cast<char*>(k.dqkv);
  void* dq = dqkv;
  void* dk = dqkv + T * d.H * d.es;
  void* dv = dqkv + 2 * T * d.H * d.es;
  // ctx = P V: dP = dctx V^T, dV = P^T dctx.
  LS_TRY(gemm(false, true, L, L, dh, k.d_ctx, dh, L * dh, v, dh, L * dh, k.d_probs, L * L, BH));
  LS_TRY(gemm(true, false, L, dh, L, s.probs, L, L * L, k.d_ctx, dh, L * dh, dv, L * dh, BH));
  LS_TRY(attn_softmax_bwd(dtype, k.d_probs, s.scores, lengths, k.d_scores, sm, scale, false,
                          seed + 0, c.attn_dropout, stream));
  // scores = Q K^T: dQ = dS K, dK = dS^T Q.
  LS_TRY(gemm(false, false, L, dh, L, k.d_scores, L, L * L, kk, dh, L * dh, dq, L * dh, BH));
  LS_TRY(gemm(true, false, L, dh, L, k.d_scores, L, L * L, q, dh, L * dh, dk, L * dh, BH));
  LS_TRY(merge_heads(dtype, k.dqkv, k.dqkv_raw, HeadsShape{3, c.batch, c.seq_len, c.heads, dh},
                     stream));
  // dbias of the QKV projection: column sums (the residual kernel's backward
  // at rate 0; its copy of the input lands in dqkv, which is consumed).
  LS_TRY(bias_dropout_residual_bwd(dtype, k.dqkv_raw, k.dqkv, g.qkv_bias, ws, T, 3 * d.H, 0, 0.f,
                                   stream));
  const void* a_in = c.pre_ln ? s.a_in : x;
  LS_TRY(gemm(true, false, d.H, 3 * d.H, T, a_in, d.H, 0, k.dqkv_raw, 3 * d.H, 0, g.qkv_kernel,
              0));
  LS_TRY(gemm(false, true, T, d.H, 3 * d.H, k.dqkv_raw, 3 * d.H, 0, w.qkv_kernel, 3 * d.H, 0,
              k.d_ain, 0));
  if (c.pre_ln) {  // x1 = x + att(LN1(x)): dx = dx1 + LN1'(d_ain)
    LS_TRY(layer_norm_bwd(dtype, k.d_ain, x, s.m1, s.r1, w.ln1_gamma, k.tmp, g.ln1_gamma,
                          g.ln1_beta, ws, T, H, stream));
    return add(k.tmp, k.dx1, dx, d.H);
  }
  return add(k.d_ain, d_pre1, dx, d.H);  // pre1 = x + att(x)
}

}  // namespace lightseq
