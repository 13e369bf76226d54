// Step for step the orchestration of cuda/layers/decoder_layer.cc (read that
// file for the reasoning); only the kernels differ.
#include "cc/kernels/cpu/decoder_layer_cpu.h"

#include <algorithm>
#include <cmath>

#include "cc/kernels/cpu/layer_steps_cpu.h"

namespace lightseq_tf {
namespace {

using lightseq::Arena;
using lightseq::DecoderDims;
using lightseq::DecoderSaved;

struct Scratch {
  void *qkv_raw, *ctx, *att_out, *cq_raw, *ckv_raw, *f_out;
  void *d_fout, *d_act, *d_ffpre, *d_in, *dx2, *dx1, *tmp;
  void *d_att, *d_ctxm, *d_ctx, *d_probs, *d_scores, *dq3, *dq3_raw, *dkv, *dkv_raw;
  float* sums;
};

Scratch CarveScratch(Arena& a, const DecoderDims& d) {
  Scratch s{};
  const size_t th = d.T * d.H * d.es, tf = d.T * d.F * d.es, mh = d.M * d.H * d.es;
  const size_t a_max = std::max(d.As, d.Ac) * d.es;
  for (auto [p, bytes] :
       {std::pair{&s.qkv_raw, 3 * th}, {&s.ctx, th}, {&s.att_out, th}, {&s.cq_raw, th},
        {&s.ckv_raw, 2 * mh}, {&s.f_out, th}, {&s.d_fout, th}, {&s.d_act, tf},
        {&s.d_ffpre, tf}, {&s.d_in, th}, {&s.dx2, th}, {&s.dx1, th}, {&s.tmp, th},
        {&s.d_att, th}, {&s.d_ctxm, th}, {&s.d_ctx, th}, {&s.d_probs, a_max},
        {&s.d_scores, a_max}, {&s.dq3, 3 * th}, {&s.dq3_raw, 3 * th}, {&s.dkv, 2 * mh},
        {&s.dkv_raw, 2 * mh}})
    *p = a.take(bytes);
  const int64_t sums = std::max({LayerNormBackwardCpuWorkspace(d.T, d.H),
                                 FusedDropoutBackwardCpuWorkspace(d.T, 3 * d.H),
                                 FusedDropoutBackwardCpuWorkspace(d.M, 2 * d.H),
                                 FusedDropoutBackwardCpuWorkspace(d.T, d.F)});
  s.sums = static_cast<float*>(a.take(sizeof(float) * sums));
  return s;
}

template <typename T>
struct Plan : CpuSteps<T> {
  const lightseq::DecoderLayerConfig& c;
  DecoderDims d;
  DecoderSaved s;
  Scratch k;
  int64_t dh, BH;
  float scale;

  Plan(tensorflow::thread::ThreadPool* p, const lightseq::DecoderLayerConfig& cfg, void* saved,
       void* workspace)
      : CpuSteps<T>{p, cfg.batch * cfg.tgt_len, cfg.hidden, cfg.epsilon, nullptr},
        c(cfg),
        d(lightseq::decoder_dims(LayoutDType(sizeof(T)), cfg)),
        dh(cfg.hidden / cfg.heads),
        BH(cfg.batch * cfg.heads),
        scale(1.f / std::sqrt(static_cast<float>(cfg.hidden / cfg.heads))) {
    Arena sa(saved), wa(workspace);
    s = lightseq::carve_decoder_saved(sa, d, c.pre_ln);
    k = CarveScratch(wa, d);
    this->sums = k.sums;
  }

  const void* part(const void* base, int64_t rows, int i) const {
    return static_cast<const char*>(base) + i * rows * d.H * d.es;
  }
  void* part(void* base, int64_t rows, int i) const {
    return static_cast<char*>(base) + i * rows * d.H * d.es;
  }
  lightseq::HeadsShape heads(int64_t splits, int64_t len) const {
    return {splits, c.batch, len, c.heads, dh};
  }

  void attend(int64_t lk, const void* q, const void* kk, const void* v, const int32_t* lengths,
              bool causal, uint64_t sd, void* scores, void* probs, void* ctx_m) const {
    const int64_t L = c.tgt_len;
    this->bgemm(BH, false, true, L, lk, dh, q, kk, scores);
    this->softmax(scores, lengths, probs, {c.batch, c.heads, L, lk}, scale, causal, sd,
                  c.attn_dropout);
    this->bgemm(BH, false, false, L, dh, lk, probs, v, k.ctx);
    this->merge(k.ctx, ctx_m, heads(1, L));
  }
  void attend_bwd(int64_t lk, const void* q, const void* kk, const void* v,
                  const int32_t* lengths, bool causal, uint64_t sd, const void* scores,
                  const void* probs, void* dq, void* dk, void* dv) const {
    const int64_t L = c.tgt_len;
    this->bgemm(BH, false, true, L, lk, dh, k.d_ctx, v, k.d_probs);
    this->bgemm(BH, true, false, lk, dh, L, probs, k.d_ctx, dv);
    this->softmax_bwd(k.d_probs, scores, lengths, k.d_scores, {c.batch, c.heads, L, lk}, scale,
                      causal, sd, c.attn_dropout);
    this->bgemm(BH, false, false, L, dh, lk, k.d_scores, kk, dq);
    this->bgemm(BH, true, false, lk, dh, L, k.d_scores, q, dk);
  }
  void close(const void* raw, const void* bias, const void* residual, uint64_t sd, void* pre,
             void* out, const void* g, const void* b, float* m, float* r) const {
    if (c.pre_ln) {
      this->bdr_fwd(raw, bias, residual, out, d.T, d.H, sd, c.hidden_dropout);
      return;
    }
    this->bdr_fwd(raw, bias, residual, pre, d.T, d.H, sd, c.hidden_dropout);
    this->ln_fwd(pre, g, b, out, m, r);
  }
  const void* close_bwd(const void* d_out, const void* pre, const float* m, const float* r,
                        const void* g, void* dg, void* db, uint64_t sd, void* d_raw,
                        void* dbias) const {
    const void* d_pre = d_out;
    if (!c.pre_ln) {
      this->ln_bwd(d_out, pre, m, r, g, k.tmp, dg, db);
      d_pre = k.tmp;
    }
    this->bdr_bwd(d_pre, d_raw, dbias, d.T, d.H, sd, c.hidden_dropout);
    return d_pre;
  }
  void into_input(const void* d_in, const void* input, const float* m, const float* r,
                  const void* g, void* dg, void* db, const void* d_res, void* out) const {
    if (!c.pre_ln) return this->add(d_in, d_res, out);
    this->ln_bwd(d_in, input, m, r, g, k.d_att, dg, db);
    this->add(k.d_att, d_res, out);
  }
};

}  // namespace

size_t DecoderLayerCpuWorkspaceBytes(int element_size, const lightseq::DecoderLayerConfig& c) {
  Arena a(nullptr);
  CarveScratch(a, lightseq::decoder_dims(LayoutDType(element_size), c));
  return a.used();
}

template <typename T>
void DecoderLayerForwardCpu(tensorflow::thread::ThreadPool* pool,
                            const lightseq::DecoderLayerConfig& c,
                            const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                            const int32_t* mem_lengths, T* y, uint64_t seed, void* saved,
                            void* workspace) {
  const Plan<T> p(pool, c, saved, workspace);
  const auto& s = p.s;
  const auto& k = p.k;
  const auto& d = p.d;
  const int64_t T_ = d.T, M = d.M, L = c.tgt_len;

  const void* in1 = x;
  if (c.pre_ln) {
    p.ln_fwd(x, w.ln1_gamma, w.ln1_beta, s.in1, s.m1, s.r1);
    in1 = s.in1;
  }
  p.gemm(false, false, T_, 3 * d.H, d.H, in1, w.qkv_kernel, k.qkv_raw);
  p.split(k.qkv_raw, w.qkv_bias, s.qkv, p.heads(3, L));
  p.attend(L, p.part(s.qkv, T_, 0), p.part(s.qkv, T_, 1), p.part(s.qkv, T_, 2), nullptr, true,
           seed + 0, s.s_scores, s.s_probs, s.s_ctx_m);
  p.gemm(false, false, T_, d.H, d.H, s.s_ctx_m, w.out_kernel, k.att_out);
  p.close(k.att_out, w.out_bias, x, seed + 1, s.pre1, s.x1, w.ln1_gamma, w.ln1_beta, s.m1, s.r1);

  const void* in2 = s.x1;
  if (c.pre_ln) {
    p.ln_fwd(s.x1, w.ln2_gamma, w.ln2_beta, s.in2, s.m2, s.r2);
    in2 = s.in2;
  }
  p.gemm(false, false, T_, d.H, d.H, in2, w.q_kernel, k.cq_raw);
  p.split(k.cq_raw, w.q_bias, s.cq, p.heads(1, L));
  p.gemm(false, false, M, 2 * d.H, d.H, memory, w.kv_kernel, k.ckv_raw);
  p.split(k.ckv_raw, w.kv_bias, s.ckv, p.heads(2, c.mem_len));
  p.attend(c.mem_len, s.cq, p.part(s.ckv, M, 0), p.part(s.ckv, M, 1), mem_lengths, false,
           seed + 2, s.c_scores, s.c_probs, s.c_ctx_m);
  p.gemm(false, false, T_, d.H, d.H, s.c_ctx_m, w.cross_out_kernel, k.att_out);
  p.close(k.att_out, w.cross_out_bias, s.x1, seed + 3, s.pre2, s.x2, w.ln2_gamma, w.ln2_beta,
          s.m2, s.r2);

  const void* in3 = s.x2;
  if (c.pre_ln) {
    p.ln_fwd(s.x2, w.ln3_gamma, w.ln3_beta, s.in3, s.m3, s.r3);
    in3 = s.in3;
  }
  p.gemm(false, false, T_, d.F, d.H, in3, w.ffn1_kernel, s.ffn_pre);
  p.act_fwd(c.act, s.ffn_pre, w.ffn1_bias, s.ffn_act, d.F, seed + 4, c.act_dropout);
  p.gemm(false, false, T_, d.H, d.F, s.ffn_act, w.ffn2_kernel, k.f_out);
  p.close(k.f_out, w.ffn2_bias, s.x2, seed + 5, s.pre3, y, w.ln3_gamma, w.ln3_beta, s.m3, s.r3);
}

template <typename T>
void DecoderLayerBackwardCpu(tensorflow::thread::ThreadPool* pool,
                             const lightseq::DecoderLayerConfig& c,
                             const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                             const int32_t* mem_lengths, const T* dy, T* dx, T* dmemory,
                             const lightseq::DecoderLayerParams& g, uint64_t seed,
                             const void* saved, void* workspace) {
  const Plan<T> p(pool, c, const_cast<void*>(saved), workspace);
  const auto& s = p.s;
  const auto& k = p.k;
  const auto& d = p.d;
  const int64_t T_ = d.T, M = d.M, L = c.tgt_len;

  // FFN block: dy -> dx2.
  const void* d_pre = p.close_bwd(dy, s.pre3, s.m3, s.r3, w.ln3_gamma, g.ln3_gamma, g.ln3_beta,
                                  seed + 5, k.d_fout, g.ffn2_bias);
  p.gemm(true, false, d.F, d.H, T_, s.ffn_act, k.d_fout, g.ffn2_kernel);
  p.gemm(false, true, T_, d.F, d.H, k.d_fout, w.ffn2_kernel, k.d_act);
  p.act_bwd(c.act, k.d_act, s.ffn_pre, w.ffn1_bias, k.d_ffpre, g.ffn1_bias, d.F, seed + 4,
            c.act_dropout);
  p.gemm(true, false, d.H, d.F, T_, c.pre_ln ? s.in3 : s.x2, k.d_ffpre, g.ffn1_kernel);
  p.gemm(false, true, T_, d.H, d.F, k.d_ffpre, w.ffn1_kernel, k.d_in);
  p.into_input(k.d_in, s.x2, s.m3, s.r3, w.ln3_gamma, g.ln3_gamma, g.ln3_beta, d_pre, k.dx2);

  // Encoder-decoder block: dx2 -> dx1 and dmemory.
  d_pre = p.close_bwd(k.dx2, s.pre2, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma, g.ln2_beta, seed + 3,
                      k.d_att, g.cross_out_bias);
  p.gemm(true, false, d.H, d.H, T_, s.c_ctx_m, k.d_att, g.cross_out_kernel);
  p.gemm(false, true, T_, d.H, d.H, k.d_att, w.cross_out_kernel, k.d_ctxm);
  p.split(k.d_ctxm, nullptr, k.d_ctx, p.heads(1, L));
  p.attend_bwd(c.mem_len, s.cq, p.part(s.ckv, M, 0), p.part(s.ckv, M, 1), mem_lengths, false,
               seed + 2, s.c_scores, s.c_probs, k.dq3, p.part(k.dkv, M, 0), p.part(k.dkv, M, 1));
  p.merge(k.dkv, k.dkv_raw, p.heads(2, c.mem_len));
  p.bdr_bwd(k.dkv_raw, k.dkv, g.kv_bias, M, 2 * d.H, 0, 0.f);
  p.gemm(true, false, d.H, 2 * d.H, M, memory, k.dkv_raw, g.kv_kernel);
  p.gemm(false, true, M, d.H, 2 * d.H, k.dkv_raw, w.kv_kernel, dmemory);
  p.merge(k.dq3, k.dq3_raw, p.heads(1, L));
  p.bdr_bwd(k.dq3_raw, k.dq3, g.q_bias, T_, d.H, 0, 0.f);
  p.gemm(true, false, d.H, d.H, T_, c.pre_ln ? s.in2 : s.x1, k.dq3_raw, g.q_kernel);
  p.gemm(false, true, T_, d.H, d.H, k.dq3_raw, w.q_kernel, k.d_in);
  p.into_input(k.d_in, s.x1, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma, g.ln2_beta, d_pre, k.dx1);

  // Self-attention block: dx1 -> dx.
  d_pre = p.close_bwd(k.dx1, s.pre1, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma, g.ln1_beta, seed + 1,
                      k.d_att, g.out_bias);
  p.gemm(true, false, d.H, d.H, T_, s.s_ctx_m, k.d_att, g.out_kernel);
  p.gemm(false, true, T_, d.H, d.H, k.d_att, w.out_kernel, k.d_ctxm);
  p.split(k.d_ctxm, nullptr, k.d_ctx, p.heads(1, L));
  p.attend_bwd(L, p.part(s.qkv, T_, 0), p.part(s.qkv, T_, 1), p.part(s.qkv, T_, 2), nullptr,
               true, seed + 0, s.s_scores, s.s_probs, p.part(k.dq3, T_, 0),
               p.part(k.dq3, T_, 1), p.part(k.dq3, T_, 2));
  p.merge(k.dq3, k.dq3_raw, p.heads(3, L));
  p.bdr_bwd(k.dq3_raw, k.dq3, g.qkv_bias, T_, 3 * d.H, 0, 0.f);
  const void* in1 = c.pre_ln ? s.in1 : static_cast<const void*>(x);
  p.gemm(true, false, d.H, 3 * d.H, T_, in1, k.dq3_raw, g.qkv_kernel);
  p.gemm(false, true, T_, d.H, 3 * d.H, k.dq3_raw, w.qkv_kernel, k.d_in);
  p.into_input(k.d_in, x, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma, g.ln1_beta, d_pre, dx);
}

#define LIGHTSEQ_INSTANTIATE(T)                                                              \
  template void DecoderLayerForwardCpu<T>(                                                   \
      tensorflow::thread::ThreadPool*, const lightseq::DecoderLayerConfig&,                  \
      const lightseq::DecoderLayerParams&, const T*, const T*, const int32_t*, T*, uint64_t, \
      void*, void*);                                                                         \
  template void DecoderLayerBackwardCpu<T>(                                                  \
      tensorflow::thread::ThreadPool*, const lightseq::DecoderLayerConfig&,                  \
      const lightseq::DecoderLayerParams&, const T*, const T*, const int32_t*, const T*, T*, \
      T*, const lightseq::DecoderLayerParams&, uint64_t, const void*, void*);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
