// Step for step the orchestration of cuda/layers/encoder_layer.cc (read that
// file for the reasoning behind each step); only the kernels differ.
#include "cc/kernels/cpu/encoder_layer_cpu.h"

#include <algorithm>
#include <cmath>

#include "cc/kernels/cpu/layer_steps_cpu.h"

namespace lightseq_tf {
namespace {

using lightseq::Arena;
using lightseq::EncoderDims;
using lightseq::EncoderSaved;

struct Scratch {
  void *qkv_raw, *ctx, *att_out, *f_out;                  // forward
  void *d_fout, *d_act, *d_ffpre, *d_ffin, *dx1, *tmp;   // backward
  void *d_att, *d_ctxm, *d_ctx, *d_probs, *d_scores, *dqkv, *dqkv_raw, *d_ain;
  float* sums;  // column-sum partials of the LayerNorm / dropout-family backwards
};

Scratch CarveScratch(Arena& a, const EncoderDims& d) {
  Scratch s{};
  const size_t th = d.T * d.H * d.es, tf = d.T * d.F * d.es;
  for (auto [p, bytes] : {std::pair{&s.qkv_raw, 3 * th}, {&s.ctx, th}, {&s.att_out, th},
                          {&s.f_out, th}, {&s.d_fout, th}, {&s.d_act, tf}, {&s.d_ffpre, tf},
                          {&s.d_ffin, th}, {&s.dx1, th}, {&s.tmp, 3 * th}, {&s.d_att, th},
                          {&s.d_ctxm, th}, {&s.d_ctx, th}, {&s.d_probs, d.A * d.es},
                          {&s.d_scores, d.A * d.es}, {&s.dqkv, 3 * th}, {&s.dqkv_raw, 3 * th},
                          {&s.d_ain, th}})
    *p = a.take(bytes);
  const int64_t sums = std::max({LayerNormBackwardCpuWorkspace(d.T, d.H),
                                 FusedDropoutBackwardCpuWorkspace(d.T, 3 * d.H),
                                 FusedDropoutBackwardCpuWorkspace(d.T, d.F)});
  s.sums = static_cast<float*>(a.take(sizeof(float) * sums));
  return s;
}

template <typename T>
struct Step : CpuSteps<T> {
  const lightseq::EncoderLayerConfig& c;
  EncoderDims d;
  EncoderSaved s;
  Scratch k;
  int64_t T_, L, dh, BH;
  lightseq::SoftmaxShape sm;
  float scale;

  Step(tensorflow::thread::ThreadPool* p, const lightseq::EncoderLayerConfig& cfg, void* saved,
       void* workspace)
      : CpuSteps<T>{p, cfg.batch * cfg.seq_len, cfg.hidden, cfg.epsilon, nullptr},
        c(cfg),
        d(lightseq::encoder_dims(LayoutDType(sizeof(T)), cfg)) {
    Arena sa(saved), wa(workspace);
    s = lightseq::carve_encoder_saved(sa, d, c.pre_ln);
    k = CarveScratch(wa, d);
    this->sums = k.sums;
    T_ = d.T;
    L = c.seq_len;
    dh = c.hidden / c.heads;
    BH = c.batch * c.heads;
    sm = {c.batch, c.heads, c.seq_len, c.seq_len};
    scale = 1.f / std::sqrt(static_cast<float>(dh));
  }

  T* part(void* base, int i) const { return this->P(base) + i * T_ * d.H; }  // Q, K, V slices
  void bgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, const void* B,
             void* C) const {
    CpuSteps<T>::bgemm(BH, ta, tb, M, N, K, A, B, C);
  }
  void bdr_fwd(const void* x, const void* bias, const void* residual, void* out, int64_t cols,
               uint64_t sd, float rate) const {
    CpuSteps<T>::bdr_fwd(x, bias, residual, out, T_, cols, sd, rate);
  }
  void bdr_bwd(const void* dy, void* dx, void* dbias, int64_t cols, uint64_t sd,
               float rate) const {
    CpuSteps<T>::bdr_bwd(dy, dx, dbias, T_, cols, sd, rate);
  }
};

}  // namespace

size_t EncoderLayerCpuWorkspaceBytes(int element_size, const lightseq::EncoderLayerConfig& c) {
  Arena a(nullptr);
  CarveScratch(a, lightseq::encoder_dims(LayoutDType(element_size), c));
  return a.used();
}

template <typename T>
void EncoderLayerForwardCpu(tensorflow::thread::ThreadPool* pool,
                            const lightseq::EncoderLayerConfig& c,
                            const lightseq::EncoderLayerParams& w, const T* x,
                            const int32_t* lengths, T* y, uint64_t seed, void* saved,
                            void* workspace) {
  const Step<T> st(pool, c, saved, workspace);
  const auto& s = st.s;
  const auto& k = st.k;
  const int64_t T_ = st.T_, H = st.d.H, F = st.d.F, L = st.L, dh = st.dh;

  // Self-attention block.
  const void* a_in = x;
  if (c.pre_ln) {
    st.ln_fwd(x, w.ln1_gamma, w.ln1_beta, s.a_in, s.m1, s.r1);
    a_in = s.a_in;
  }
  st.gemm(false, false, T_, 3 * H, H, a_in, w.qkv_kernel, k.qkv_raw);
  st.split(k.qkv_raw, w.qkv_bias, s.qkv, {3, c.batch, c.seq_len, c.heads, dh});
  st.bgemm(false, true, L, L, dh, st.part(s.qkv, 0), st.part(s.qkv, 1), s.scores);
  st.softmax(s.scores, lengths, s.probs, st.sm, st.scale, false, seed + 0, c.attn_dropout);
  st.bgemm(false, false, L, dh, L, s.probs, st.part(s.qkv, 2), k.ctx);
  st.merge(k.ctx, s.ctx_m, {1, c.batch, c.seq_len, c.heads, dh});
  st.gemm(false, false, T_, H, H, s.ctx_m, w.out_kernel, k.att_out);
  if (c.pre_ln) {
    st.bdr_fwd(k.att_out, w.out_bias, x, s.x1, H, seed + 1, c.hidden_dropout);
  } else {
    st.bdr_fwd(k.att_out, w.out_bias, x, s.pre1, H, seed + 1, c.hidden_dropout);
    st.ln_fwd(s.pre1, w.ln1_gamma, w.ln1_beta, s.x1, s.m1, s.r1);
  }

  // FFN block.
  const void* f_in = s.x1;
  if (c.pre_ln) {
    st.ln_fwd(s.x1, w.ln2_gamma, w.ln2_beta, s.ffn_in, s.m2, s.r2);
    f_in = s.ffn_in;
  }
  st.gemm(false, false, T_, F, H, f_in, w.ffn1_kernel, s.ffn_pre);
  st.act_fwd(c.act, s.ffn_pre, w.ffn1_bias, s.ffn_act, F, seed + 2, c.act_dropout);
  st.gemm(false, false, T_, H, F, s.ffn_act, w.ffn2_kernel, k.f_out);
  if (c.pre_ln) {
    st.bdr_fwd(k.f_out, w.ffn2_bias, s.x1, y, H, seed + 3, c.hidden_dropout);
    return;
  }
  st.bdr_fwd(k.f_out, w.ffn2_bias, s.x1, s.pre2, H, seed + 3, c.hidden_dropout);
  st.ln_fwd(s.pre2, w.ln2_gamma, w.ln2_beta, y, s.m2, s.r2);
}

template <typename T>
void EncoderLayerBackwardCpu(tensorflow::thread::ThreadPool* pool,
                             const lightseq::EncoderLayerConfig& c,
                             const lightseq::EncoderLayerParams& w, const T* x,
                             const int32_t* lengths, const T* dy, T* dx,
                             const lightseq::EncoderLayerParams& g, uint64_t seed,
                             const void* saved, void* workspace) {
  const Step<T> st(pool, c, const_cast<void*>(saved), workspace);
  const auto& s = st.s;
  const auto& k = st.k;
  const int64_t T_ = st.T_, H = st.d.H, F = st.d.F, L = st.L, dh = st.dh;

  // Post-LN: the gradient through the block's closing LayerNorm (into tmp).
  auto through_post_ln = [&](const void* d_out, const void* pre, const float* mean,
                             const float* rstd, const void* gamma, void* dgamma, void* dbeta) {
    if (c.pre_ln) return d_out;
    st.ln_bwd(d_out, pre, mean, rstd, gamma, k.tmp, dgamma, dbeta);
    return static_cast<const void*>(k.tmp);
  };

  // FFN block: d(pre2) -> d_fout, dx1.
  const void* d_pre2 = through_post_ln(dy, s.pre2, s.m2, s.r2, w.ln2_gamma, g.ln2_gamma,
                                       g.ln2_beta);
  st.bdr_bwd(d_pre2, k.d_fout, g.ffn2_bias, H, seed + 3, c.hidden_dropout);
  st.gemm(true, false, F, H, T_, s.ffn_act, k.d_fout, g.ffn2_kernel);
  st.gemm(false, true, T_, F, H, k.d_fout, w.ffn2_kernel, k.d_act);
  st.act_bwd(c.act, k.d_act, s.ffn_pre, w.ffn1_bias, k.d_ffpre, g.ffn1_bias, F, seed + 2,
             c.act_dropout);
  const void* f_in = c.pre_ln ? s.ffn_in : s.x1;
  st.gemm(true, false, H, F, T_, f_in, k.d_ffpre, g.ffn1_kernel);
  st.gemm(false, true, T_, H, F, k.d_ffpre, w.ffn1_kernel, k.d_ffin);
  if (c.pre_ln) {  // y = x1 + ffn(LN2(x1)): dx1 = dy + LN2'(d_ffin)
    st.ln_bwd(k.d_ffin, s.x1, s.m2, s.r2, w.ln2_gamma, k.tmp, g.ln2_gamma, g.ln2_beta);
    st.add(k.tmp, dy, k.dx1);
  } else {  // pre2 = x1 + ffn(x1): dx1 = d_pre2 + d_ffin
    st.add(k.d_ffin, d_pre2, k.dx1);
  }

  // Attention block: dx1 -> d(pre1) -> d_att, dx.
  const void* d_pre1 = through_post_ln(k.dx1, s.pre1, s.m1, s.r1, w.ln1_gamma, g.ln1_gamma,
                                       g.ln1_beta);
  st.bdr_bwd(d_pre1, k.d_att, g.out_bias, H, seed + 1, c.hidden_dropout);
  st.gemm(true, false, H, H, T_, s.ctx_m, k.d_att, g.out_kernel);
  st.gemm(false, true, T_, H, H, k.d_att, w.out_kernel, k.d_ctxm);
  st.split(k.d_ctxm, nullptr, k.d_ctx, {1, c.batch, c.seq_len, c.heads, dh});
  // ctx = P V: dP = dctx V^T, dV = P^T dctx.
  st.bgemm(false, true, L, L, dh, k.d_ctx, st.part(s.qkv, 2), k.d_probs);
  st.bgemm(true, false, L, dh, L, s.probs, k.d_ctx, st.part(k.dqkv, 2));
  st.softmax_bwd(k.d_probs, s.scores, lengths, k.d_scores, st.sm, st.scale, false, seed + 0,
                 c.attn_dropout);
  // scores = Q K^T: dQ = dS K, dK = dS^T Q.
  st.bgemm(false, false, L, dh, L, k.d_scores, st.part(s.qkv, 1), st.part(k.dqkv, 0));
  st.bgemm(true, false, L, dh, L, k.d_scores, st.part(s.qkv, 0), st.part(k.dqkv, 1));
  st.merge(k.dqkv, k.dqkv_raw, {3, c.batch, c.seq_len, c.heads, dh});
  st.bdr_bwd(k.dqkv_raw, k.dqkv, g.qkv_bias, 3 * H, 0, 0.f);  // dbias: column sums
  const void* a_in = c.pre_ln ? s.a_in : static_cast<const void*>(x);
  st.gemm(true, false, H, 3 * H, T_, a_in, k.dqkv_raw, g.qkv_kernel);
  st.gemm(false, true, T_, H, 3 * H, k.dqkv_raw, w.qkv_kernel, k.d_ain);
  if (c.pre_ln) {  // x1 = x + att(LN1(x)): dx = dx1 + LN1'(d_ain)
    st.ln_bwd(k.d_ain, x, s.m1, s.r1, w.ln1_gamma, k.tmp, g.ln1_gamma, g.ln1_beta);
    st.add(k.tmp, k.dx1, dx);
    return;
  }
  st.add(k.d_ain, d_pre1, dx);  // pre1 = x + att(x)
}

#define LIGHTSEQ_INSTANTIATE(T)                                                              \
  template void EncoderLayerForwardCpu<T>(                                                   \
      tensorflow::thread::ThreadPool*, const lightseq::EncoderLayerConfig&,                  \
      const lightseq::EncoderLayerParams&, const T*, const int32_t*, T*, uint64_t, void*,    \
      void*);                                                                                \
  template void EncoderLayerBackwardCpu<T>(                                                  \
      tensorflow::thread::ThreadPool*, const lightseq::EncoderLayerConfig&,                  \
      const lightseq::EncoderLayerParams&, const T*, const int32_t*, const T*, T*,           \
      const lightseq::EncoderLayerParams&, uint64_t, const void*, void*);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
