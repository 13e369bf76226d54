// Step for step the orchestration of cuda/layers/decoder_step.cc.
#include "cc/kernels/cpu/decoder_step_cpu.h"

#include <cmath>

#include "cc/kernels/cpu/layer_steps_cpu.h"
#include "cc/kernels/cpu/step_attention_cpu.h"

namespace lightseq_tf {

template <typename T>
void DecoderStepCpu(tensorflow::thread::ThreadPool* pool, const lightseq::DecoderStepConfig& c,
                    const lightseq::DecoderLayerParams& w, const T* x, T* cache_keys,
                    T* cache_values, int64_t cache_len, const T* mem_keys, const T* mem_values,
                    const int32_t* mem_lengths, T* y, void* workspace) {
  if (c.batch == 0) return;
  lightseq::Arena arena(workspace);
  const lightseq::StepScratch k =
      lightseq::carve_decoder_step_scratch(arena, LayoutDType(sizeof(T)), c);
  const int64_t T_ = c.batch * c.q_len, H = c.hidden, F = c.ffn, dh = H / c.heads;
  const CpuSteps<T> st{pool, T_, H, c.epsilon, nullptr};
  const lightseq::StepAttentionShape shape{c.batch, c.q_len, c.heads, dh};
  const float scale = 1.f / std::sqrt(static_cast<float>(dh));
  auto P = [](void* p) { return static_cast<T*>(p); };
  auto open = [&](const void* block_in, const void* g, const void* b) -> const void* {
    if (!c.pre_ln) return block_in;
    st.ln_fwd(block_in, g, b, k.in, k.mean, k.rstd);
    return k.in;
  };
  auto close = [&](const void* raw, const void* bias, const void* residual, void* out,
                   const void* g, const void* b) {
    if (c.pre_ln) return st.bdr_fwd(raw, bias, residual, out, T_, H, 0, 0.f);
    st.bdr_fwd(raw, bias, residual, k.pre, T_, H, 0, 0.f);
    st.ln_fwd(k.pre, g, b, out, k.mean, k.rstd);
  };

  const void* in = open(x, w.ln1_gamma, w.ln1_beta);
  st.gemm(false, false, T_, 3 * H, H, in, w.qkv_kernel, k.qkv_raw);
  StepSelfAttentionCpu<T>(pool, P(k.qkv_raw), static_cast<const T*>(w.qkv_bias), cache_keys,
                          cache_values, c.capacity, cache_len, P(k.ctx), shape, scale);
  st.gemm(false, false, T_, H, H, k.ctx, w.out_kernel, k.att_out);
  close(k.att_out, w.out_bias, x, k.x1, w.ln1_gamma, w.ln1_beta);

  in = open(k.x1, w.ln2_gamma, w.ln2_beta);
  st.gemm(false, false, T_, H, H, in, w.q_kernel, k.q_raw);
  StepCrossAttentionCpu<T>(pool, P(k.q_raw), static_cast<const T*>(w.q_bias), mem_keys,
                           mem_values, c.mem_len, mem_lengths, P(k.ctx), shape, scale);
  st.gemm(false, false, T_, H, H, k.ctx, w.cross_out_kernel, k.att_out);
  close(k.att_out, w.cross_out_bias, k.x1, k.x2, w.ln2_gamma, w.ln2_beta);

  in = open(k.x2, w.ln3_gamma, w.ln3_beta);
  st.gemm(false, false, T_, F, H, in, w.ffn1_kernel, k.ffn_pre);
  st.act_fwd(c.act, k.ffn_pre, w.ffn1_bias, k.ffn_act, F, 0, 0.f);
  st.gemm(false, false, T_, H, F, k.ffn_act, w.ffn2_kernel, k.f_out);
  close(k.f_out, w.ffn2_bias, k.x2, y, w.ln3_gamma, w.ln3_beta);
}

#define LIGHTSEQ_INSTANTIATE(T)                                                                \
  template void DecoderStepCpu<T>(tensorflow::thread::ThreadPool*,                             \
                                  const lightseq::DecoderStepConfig&,                          \
                                  const lightseq::DecoderLayerParams&, const T*, T*, T*, int64_t, \
                                  const T*, const T*, const int32_t*, T*, void*);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
