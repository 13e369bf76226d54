// Encoder layer orchestration: GEMMs through the caller's lightseq::Gemm
// (float32 accumulation) between the fused kernels, in the block steps
// shared with the decoder layer (layer_blocks.h); every buffer comes from
// the caller's `saved` and `workspace` (see encoder_layer.h for the math and
// the dropout streams).
#include "lightseq/encoder_layer.h"

#include <algorithm>
#include <cmath>

#include "layer_blocks.h"
#include "lightseq/bias_act_dropout.h"

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
  s.tmp = a.take(th);
  s.d_att = a.take(th);
  s.d_ctxm = a.take(th);
  s.d_ctx = a.take(th);
  s.d_probs = a.take(d.A * d.es);
  s.d_scores = a.take(d.A * d.es);
  s.dqkv = a.take(3 * th);
  s.dqkv_raw = a.take(3 * th);
  s.d_ain = a.take(th);
  s.zeros = a.take(d.H * d.es);
  s.kernel_ws_bytes = std::max(
      {layer_norm_bwd_workspace_bytes(dtype, d.T, static_cast<int>(d.H)),
       bias_dropout_residual_bwd_workspace_bytes(dtype, d.T, 3 * d.H),
       bias_act_dropout_bwd_workspace_bytes(dtype, d.T, d.F), size_t{16}});
  s.kernel_ws = a.take(s.kernel_ws_bytes);
  return s;
}

// Everything both directions derive from the config and the two buffers.
struct Plan : layers::LayerBlocks {
  Dims d;
  Saved s;
  Scratch k;
};

Plan make_plan(DType dtype, const EncoderLayerConfig& c, void* saved, void* workspace,
               const Gemm& gemm, cudaStream_t stream) {
  const Dims d = encoder_dims(dtype, c);
  Arena sa(saved), wa(workspace);
  const Scratch k = carve_scratch(wa, dtype, d);
  const layers::LayerBlocks blocks = layers::blocks_of(dtype, c, c.seq_len, k, gemm, stream);
  return Plan{blocks, d, carve_encoder_saved(sa, d, c.pre_ln), k};
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
  const Plan p = make_plan(dtype, c, saved, workspace, backend, stream);
  const auto& s = p.s;
  const auto& k = p.k;
  const int64_t T = p.T, H = p.H, F = p.d.F, L = c.seq_len;

  // Self-attention block.
  const void* a_in = x;
  if (c.pre_ln) {
    LS_TRY(p.ln_fwd(x, w.ln1_gamma, w.ln1_beta, s.a_in, s.m1, s.r1));
    a_in = s.a_in;
  }
  LS_TRY(p.gemm(false, false, T, 3 * H, H, a_in, H, 0, w.qkv_kernel, 3 * H, 0, k.qkv_raw, 0));
  LS_TRY(split_heads(dtype, k.qkv_raw, w.qkv_bias, s.qkv, p.heads_shape(3, L), stream));
  LS_TRY(p.attend(L, p.part(s.qkv, T, 0), p.part(s.qkv, T, 1), p.part(s.qkv, T, 2), lengths,
                  false, seed + 0, s.scores, s.probs, s.ctx_m));
  LS_TRY(p.gemm(false, false, T, H, H, s.ctx_m, H, 0, w.out_kernel, H, 0, k.att_out, 0));
  LS_TRY(p.close(k.att_out, w.out_bias, x, seed + 1, s.pre1, s.x1, w.ln1_gamma, w.ln1_beta, s.m1,
                 s.r1));

  // FFN block.
  const void* f_in = s.x1;
  if (c.pre_ln) {
    LS_TRY(p.ln_fwd(s.x1, w.ln2_gamma, w.ln2_beta, s.ffn_in, s.m2, s.r2));
    f_in = s.ffn_in;
  }
  LS_TRY(p.gemm(false, false, T, F, H, f_in, H, 0, w.ffn1_kernel, F, 0, s.ffn_pre, 0));
  LS_TRY(bias_act_dropout_fwd(dtype, c.act, s.ffn_pre, w.ffn1_bias, s.ffn_act, T, F, seed + 2,
                              c.act_dropout, stream));
  LS_TRY(p.gemm(false, false, T, H, F, s.ffn_act, F, 0, w.ffn2_kernel, H, 0, k.f_out, 0));
  return p.close(k.f_out, w.ffn2_bias, s.x1, seed + 3, s.pre2, y, w.ln2_gamma, w.ln2_beta, s.m2,
                 s.r2);
}

// The backward, block by block from the output: through the closing (post-LN:
// its LayerNorm; then the dropout and the bias), the block's second and first
// GEMM (each: the weight gradient A^T dC, the input gradient dC W^T), the
// activation or the attention, and into the block's input, where the
// residual path's gradient joins (pre-LN: through the opening LayerNorm).
cudaError_t encoder_layer_bwd(DType dtype, const EncoderLayerConfig& c,
                              const EncoderLayerParams& w, const void* x,
                              const int32_t* lengths, const void* dy, void* dx,
                              const EncoderLayerParams& g, uint64_t seed, const void* saved,
                              void* workspace, const Gemm& backend, cudaStream_t stream) {
  if (!encoder_layer_config_valid(c)) return cudaErrorInvalidValue;
  const Plan p = make_plan(dtype, c, const_cast<void*>(saved), workspace, backend, stream);
  const auto& s = p.s;
  const auto& k = p.k;
  const int64_t T = p.T, H = p.H, F = p.d.F, L = c.seq_len;
  LS_TRY(p.clear_zeros());
  const void* d_pre;

  // FFN block: dy -> dx1.
  LS_TRY(p.close_bwd(dy, s.pre2, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma, g.ln2_beta, seed + 3,
                     k.d_fout, g.ffn2_bias, &d_pre));
  LS_TRY(p.gemm(true, false, F, H, T, s.ffn_act, F, 0, k.d_fout, H, 0, g.ffn2_kernel, 0));
  LS_TRY(p.gemm(false, true, T, F, H, k.d_fout, H, 0, w.ffn2_kernel, H, 0, k.d_act, 0));
  LS_TRY(bias_act_dropout_bwd(dtype, c.act, k.d_act, s.ffn_pre, w.ffn1_bias, k.d_ffpre,
                              g.ffn1_bias, k.kernel_ws, T, F, seed + 2, c.act_dropout, stream));
  const void* f_in = c.pre_ln ? s.ffn_in : s.x1;
  LS_TRY(p.gemm(true, false, H, F, T, f_in, H, 0, k.d_ffpre, F, 0, g.ffn1_kernel, 0));
  LS_TRY(p.gemm(false, true, T, H, F, k.d_ffpre, F, 0, w.ffn1_kernel, F, 0, k.d_ffin, 0));
  LS_TRY(p.into_input(k.d_ffin, s.x1, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma, g.ln2_beta, d_pre,
                      k.dx1));

  // Attention block: dx1 -> dx.
  LS_TRY(p.close_bwd(k.dx1, s.pre1, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma, g.ln1_beta, seed + 1,
                     k.d_att, g.out_bias, &d_pre));
  LS_TRY(p.gemm(true, false, H, H, T, s.ctx_m, H, 0, k.d_att, H, 0, g.out_kernel, 0));
  LS_TRY(p.gemm(false, true, T, H, H, k.d_att, H, 0, w.out_kernel, H, 0, k.d_ctxm, 0));
  LS_TRY(split_heads(dtype, k.d_ctxm, k.zeros, k.d_ctx, p.heads_shape(1, L), stream));
  LS_TRY(p.attend_bwd(L, p.part(s.qkv, T, 0), p.part(s.qkv, T, 1), p.part(s.qkv, T, 2), lengths,
                      false, seed + 0, s.scores, s.probs, p.part(k.dqkv, T, 0),
                      p.part(k.dqkv, T, 1), p.part(k.dqkv, T, 2)));
  LS_TRY(merge_heads(dtype, k.dqkv, k.dqkv_raw, p.heads_shape(3, L), stream));
  LS_TRY(p.bias_grad(k.dqkv_raw, g.qkv_bias, T, 3 * H));
  const void* a_in = c.pre_ln ? s.a_in : x;
  LS_TRY(p.gemm(true, false, H, 3 * H, T, a_in, H, 0, k.dqkv_raw, 3 * H, 0, g.qkv_kernel, 0));
  LS_TRY(p.gemm(false, true, T, H, 3 * H, k.dqkv_raw, 3 * H, 0, w.qkv_kernel, 3 * H, 0, k.d_ain,
                0));
  return p.into_input(k.d_ain, x, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma, g.ln1_beta, d_pre, dx);
}

}  // namespace lightseq
