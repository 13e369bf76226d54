// Decoder layer orchestration: GEMMs through the caller's lightseq::Gemm
// (float32 accumulation) between the fused kernels; every buffer comes from
// the caller's `saved` and `workspace` (decoder_layer.h: math, dropout
// streams). The self-attention block and the FFN block are the encoder
// layer's (encoder_layer.cc explains their backward step by step); the
// encoder-decoder block adds a query from the target and keys/values from
// the memory, whose gradient this layer returns.
#include "lightseq/decoder_layer.h"

#include <algorithm>
#include <cmath>

#include "layer_blocks.h"
#include "lightseq/bias_act_dropout.h"

namespace lightseq {
namespace {

using layers::RowGemm;

struct Scratch {
  void *qkv_raw, *ctx, *att_out, *cq_raw, *ckv_raw, *f_out;                 // forward
  void *d_fout, *d_act, *d_ffpre, *d_in, *dx2, *dx1, *tmp;                  // backward
  void *d_att, *d_ctxm, *d_ctx, *d_probs, *d_scores, *dq3, *dq3_raw;       // attention bwd
  void *dkv, *dkv_raw, *zeros;
  void* kernel_ws;
};

Scratch carve_scratch(Arena& a, DType dtype, const DecoderDims& d) {
  Scratch s{};
  const size_t th = d.T * d.H * d.es, tf = d.T * d.F * d.es, mh = d.M * d.H * d.es;
  const size_t a_max = std::max(d.As, d.Ac) * d.es;
  s.qkv_raw = a.take(3 * th);
  s.ctx = a.take(th);
  s.att_out = a.take(th);
  s.cq_raw = a.take(th);
  s.ckv_raw = a.take(2 * mh);
  s.f_out = a.take(th);
  s.d_fout = a.take(th);
  s.d_act = a.take(tf);
  s.d_ffpre = a.take(tf);
  s.d_in = a.take(th);
  s.dx2 = a.take(th);
  s.dx1 = a.take(th);
  s.tmp = a.take(th);
  s.d_att = a.take(th);
  s.d_ctxm = a.take(th);
  s.d_ctx = a.take(th);
  s.d_probs = a.take(a_max);
  s.d_scores = a.take(a_max);
  s.dq3 = a.take(3 * th);      // self: dQ, dK, dV; cross: dQ
  s.dq3_raw = a.take(3 * th);
  s.dkv = a.take(2 * mh);      // cross: dK, dV of the memory
  s.dkv_raw = a.take(2 * mh);
  s.zeros = a.take(d.H * d.es);
  s.kernel_ws = a.take(std::max(
      {layer_norm_bwd_workspace_bytes(dtype, d.T, static_cast<int>(d.H)),
       bias_dropout_residual_bwd_workspace_bytes(dtype, d.T, 3 * d.H),
       bias_dropout_residual_bwd_workspace_bytes(dtype, d.M, 2 * d.H),
       bias_act_dropout_bwd_workspace_bytes(dtype, d.T, d.F), size_t{16}}));
  return s;
}

// Everything both directions derive from the config and the two buffers.
struct Plan : layers::LayerBlocks {
  DecoderDims d;
  DecoderSaved s;
  Scratch k;
};

Plan make_plan(DType dtype, const DecoderLayerConfig& c, void* saved, void* workspace,
               const Gemm& gemm, cudaStream_t stream) {
  const DecoderDims d = decoder_dims(dtype, c);
  Arena sa(saved), wa(workspace);
  const Scratch k = carve_scratch(wa, dtype, d);
  const layers::LayerBlocks blocks = layers::blocks_of(dtype, c, c.tgt_len, k, gemm, stream);
  return Plan{blocks, d, carve_decoder_saved(sa, d, c.pre_ln), k};
}

}  // namespace

size_t decoder_layer_workspace_bytes(DType dtype, const DecoderLayerConfig& c) {
  Arena a(nullptr);
  carve_scratch(a, dtype, decoder_dims(dtype, c));
  return a.used();
}

cudaError_t decoder_layer_fwd(DType dtype, const DecoderLayerConfig& c,
                              const DecoderLayerParams& w, const void* x, const void* memory,
                              const int32_t* mem_lengths, void* y, uint64_t seed, void* saved,
                              void* workspace, const Gemm& backend, cudaStream_t stream) {
  if (!decoder_layer_config_valid(c)) return cudaErrorInvalidValue;
  const Plan p = make_plan(dtype, c, saved, workspace, backend, stream);
  const auto& s = p.s;
  const auto& k = p.k;
  const auto& d = p.d;
  const int64_t T = d.T, M = d.M, L = c.tgt_len;

  // Self-attention block (causal; every target position is a key).
  const void* in1 = x;
  if (c.pre_ln) {
    LS_TRY(p.ln_fwd(x, w.ln1_gamma, w.ln1_beta, s.in1, s.m1, s.r1));
    in1 = s.in1;
  }
  LS_TRY(p.gemm(false, false, T, 3 * d.H, d.H, in1, d.H, 0, w.qkv_kernel, 3 * d.H, 0, k.qkv_raw,
                0));
  LS_TRY(split_heads(dtype, k.qkv_raw, w.qkv_bias, s.qkv, p.heads_shape(3, L), stream));
  LS_TRY(p.attend(L, p.part(s.qkv, T, 0), p.part(s.qkv, T, 1), p.part(s.qkv, T, 2), nullptr,
                  true, seed + 0, s.s_scores, s.s_probs, s.s_ctx_m));
  LS_TRY(p.gemm(false, false, T, d.H, d.H, s.s_ctx_m, d.H, 0, w.out_kernel, d.H, 0, k.att_out,
                0));
  LS_TRY(p.close(k.att_out, w.out_bias, x, seed + 1, s.pre1, s.x1, w.ln1_gamma, w.ln1_beta, s.m1,
                 s.r1));

  // Encoder-decoder block: query from x1, keys and values from the memory.
  const void* in2 = s.x1;
  if (c.pre_ln) {
    LS_TRY(p.ln_fwd(s.x1, w.ln2_gamma, w.ln2_beta, s.in2, s.m2, s.r2));
    in2 = s.in2;
  }
  LS_TRY(p.gemm(false, false, T, d.H, d.H, in2, d.H, 0, w.q_kernel, d.H, 0, k.cq_raw, 0));
  LS_TRY(split_heads(dtype, k.cq_raw, w.q_bias, s.cq, p.heads_shape(1, L), stream));
  LS_TRY(p.gemm(false, false, M, 2 * d.H, d.H, memory, d.H, 0, w.kv_kernel, 2 * d.H, 0,
                k.ckv_raw, 0));
  LS_TRY(split_heads(dtype, k.ckv_raw, w.kv_bias, s.ckv, p.heads_shape(2, c.mem_len), stream));
  LS_TRY(p.attend(c.mem_len, s.cq, p.part(s.ckv, M, 0), p.part(s.ckv, M, 1), mem_lengths, false,
                  seed + 2, s.c_scores, s.c_probs, s.c_ctx_m));
  LS_TRY(p.gemm(false, false, T, d.H, d.H, s.c_ctx_m, d.H, 0, w.cross_out_kernel, d.H, 0,
                k.att_out, 0));
  LS_TRY(p.close(k.att_out, w.cross_out_bias, s.x1, seed + 3, s.pre2, s.x2, w.ln2_gamma,
                 w.ln2_beta, s.m2, s.r2));

  // FFN block.
  const void* in3 = s.x2;
  if (c.pre_ln) {
    LS_TRY(p.ln_fwd(s.x2, w.ln3_gamma, w.ln3_beta, s.in3, s.m3, s.r3));
    in3 = s.in3;
  }
  LS_TRY(p.gemm(false, false, T, d.F, d.H, in3, d.H, 0, w.ffn1_kernel, d.F, 0, s.ffn_pre, 0));
  LS_TRY(bias_act_dropout_fwd(dtype, c.act, s.ffn_pre, w.ffn1_bias, s.ffn_act, T, d.F, seed + 4,
                              c.act_dropout, stream));
  LS_TRY(p.gemm(false, false, T, d.H, d.F, s.ffn_act, d.F, 0, w.ffn2_kernel, d.H, 0, k.f_out, 0));
  return p.close(k.f_out, w.ffn2_bias, s.x2, seed + 5, s.pre3, y, w.ln3_gamma, w.ln3_beta, s.m3,
                 s.r3);
}

cudaError_t decoder_layer_bwd(DType dtype, const DecoderLayerConfig& c,
                              const DecoderLayerParams& w, const void* x, const void* memory,
                              const int32_t* mem_lengths, const void* dy, void* dx,
                              void* dmemory, const DecoderLayerParams& g, uint64_t seed,
                              const void* saved, void* workspace, const Gemm& backend,
                              cudaStream_t stream) {
  if (!decoder_layer_config_valid(c)) return cudaErrorInvalidValue;
  const Plan p = make_plan(dtype, c, const_cast<void*>(saved), workspace, backend, stream);
  const auto& s = p.s;
  const auto& k = p.k;
  const auto& d = p.d;
  const int64_t T = d.T, M = d.M, L = c.tgt_len;
  LS_TRY(p.clear_zeros());
  const void* d_pre;

  // FFN block: dy -> dx2.
  LS_TRY(p.close_bwd(dy, s.pre3, s.m3, s.r3, w.ln3_gamma, g.ln3_gamma, g.ln3_beta, seed + 5,
                     k.d_fout, g.ffn2_bias, &d_pre));
  LS_TRY(p.gemm(true, false, d.F, d.H, T, s.ffn_act, d.F, 0, k.d_fout, d.H, 0, g.ffn2_kernel, 0));
  LS_TRY(p.gemm(false, true, T, d.F, d.H, k.d_fout, d.H, 0, w.ffn2_kernel, d.H, 0, k.d_act, 0));
  LS_TRY(bias_act_dropout_bwd(dtype, c.act, k.d_act, s.ffn_pre, w.ffn1_bias, k.d_ffpre,
                              g.ffn1_bias, k.kernel_ws, T, d.F, seed + 4, c.act_dropout, stream));
  const void* in3 = c.pre_ln ? s.in3 : s.x2;
  LS_TRY(p.gemm(true, false, d.H, d.F, T, in3, d.H, 0, k.d_ffpre, d.F, 0, g.ffn1_kernel, 0));
  LS_TRY(p.gemm(false, true, T, d.H, d.F, k.d_ffpre, d.F, 0, w.ffn1_kernel, d.F, 0, k.d_in, 0));
  LS_TRY(p.into_input(k.d_in, s.x2, s.m3, s.r3, w.ln3_gamma, g.ln3_gamma, g.ln3_beta, d_pre,
                      k.dx2));

  // Encoder-decoder block: dx2 -> dx1 and dmemory.
  LS_TRY(p.close_bwd(k.dx2, s.pre2, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma, g.ln2_beta, seed + 3,
                     k.d_att, g.cross_out_bias, &d_pre));
  LS_TRY(p.gemm(true, false, d.H, d.H, T, s.c_ctx_m, d.H, 0, k.d_att, d.H, 0, g.cross_out_kernel,
                0));
  LS_TRY(p.gemm(false, true, T, d.H, d.H, k.d_att, d.H, 0, w.cross_out_kernel, d.H, 0, k.d_ctxm,
                0));
  LS_TRY(split_heads(dtype, k.d_ctxm, k.zeros, k.d_ctx, p.heads_shape(1, L), stream));
  LS_TRY(p.attend_bwd(c.mem_len, s.cq, p.part(s.ckv, M, 0), p.part(s.ckv, M, 1), mem_lengths,
                      false, seed + 2, s.c_scores, s.c_probs, k.dq3, p.part(k.dkv, M, 0),
                      p.part(k.dkv, M, 1)));
  // Memory side: dK, dV merged to [M, 2H]; dbias (column sums), dkernel, dmemory.
  LS_TRY(merge_heads(dtype, k.dkv, k.dkv_raw, p.heads_shape(2, c.mem_len), stream));
  LS_TRY(p.bias_grad(k.dkv_raw, g.kv_bias, M, 2 * d.H));
  LS_TRY(p.gemm(true, false, d.H, 2 * d.H, M, memory, d.H, 0, k.dkv_raw, 2 * d.H, 0, g.kv_kernel,
                0));
  LS_TRY(p.gemm(false, true, M, d.H, 2 * d.H, k.dkv_raw, 2 * d.H, 0, w.kv_kernel, 2 * d.H, 0,
                dmemory, 0));
  // Query side.
  LS_TRY(merge_heads(dtype, k.dq3, k.dq3_raw, p.heads_shape(1, L), stream));
  LS_TRY(p.bias_grad(k.dq3_raw, g.q_bias, T, d.H));
  const void* in2 = c.pre_ln ? s.in2 : s.x1;
  LS_TRY(p.gemm(true, false, d.H, d.H, T, in2, d.H, 0, k.dq3_raw, d.H, 0, g.q_kernel, 0));
  LS_TRY(p.gemm(false, true, T, d.H, d.H, k.dq3_raw, d.H, 0, w.q_kernel, d.H, 0, k.d_in, 0));
  LS_TRY(p.into_input(k.d_in, s.x1, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma, g.ln2_beta, d_pre,
                      k.dx1));

  // Self-attention block: dx1 -> dx.
  LS_TRY(p.close_bwd(k.dx1, s.pre1, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma, g.ln1_beta, seed + 1,
                     k.d_att, g.out_bias, &d_pre));
  LS_TRY(p.gemm(true, false, d.H, d.H, T, s.s_ctx_m, d.H, 0, k.d_att, d.H, 0, g.out_kernel, 0));
  LS_TRY(p.gemm(false, true, T, d.H, d.H, k.d_att, d.H, 0, w.out_kernel, d.H, 0, k.d_ctxm, 0));
  LS_TRY(split_heads(dtype, k.d_ctxm, k.zeros, k.d_ctx, p.heads_shape(1, L), stream));
  LS_TRY(p.attend_bwd(L, p.part(s.qkv, T, 0), p.part(s.qkv, T, 1), p.part(s.qkv, T, 2), nullptr,
                      true, seed + 0, s.s_scores, s.s_probs, p.part(k.dq3, T, 0),
                      p.part(k.dq3, T, 1), p.part(k.dq3, T, 2)));
  LS_TRY(merge_heads(dtype, k.dq3, k.dq3_raw, p.heads_shape(3, L), stream));
  LS_TRY(p.bias_grad(k.dq3_raw, g.qkv_bias, T, 3 * d.H));
  const void* in1 = c.pre_ln ? s.in1 : x;
  LS_TRY(p.gemm(true, false, d.H, 3 * d.H, T, in1, d.H, 0, k.dq3_raw, 3 * d.H, 0, g.qkv_kernel,
                0));
  LS_TRY(p.gemm(false, true, T, d.H, 3 * d.H, k.dq3_raw, 3 * d.H, 0, w.qkv_kernel, 3 * d.H, 0,
                k.d_in, 0));
  return p.into_input(k.d_in, x, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma, g.ln1_beta, d_pre, dx);
}

}  // namespace lightseq
