// Incremental decoder step orchestration (decoder_step.h): for B*q_len rows,
// GEMMs through the caller's lightseq::Gemm between the fused kernels, the
// attentions reading the caches in place (step_attention.h). Per layer and
// step: 6 GEMMs and 10 kernels at most, nothing transposed, no dropout.
#include "lightseq/decoder_step.h"

#include <cmath>

#include "layer_common.h"
#include "lightseq/bias_act_dropout.h"
#include "lightseq/bias_dropout_residual.h"
#include "lightseq/heads.h"
#include "lightseq/layer_norm.h"
#include "lightseq/step_attention.h"

namespace lightseq {

using layers::RowGemm;

cudaError_t decoder_step_fwd(DType dtype, const DecoderStepConfig& c,
                             const DecoderLayerParams& w, const void* x, void* cache_keys,
                             void* cache_values, int64_t cache_len, const void* mem_keys,
                             const void* mem_values, const int32_t* mem_lengths, void* y,
                             void* workspace, const Gemm& backend, cudaStream_t stream) {
  if (!decoder_step_config_valid(c, cache_len)) return cudaErrorInvalidValue;
  if (c.batch == 0) return cudaSuccess;
  Arena arena(workspace);
  const StepScratch k = carve_decoder_step_scratch(arena, dtype, c);
  const RowGemm gemm{backend, dtype};
  const int64_t T = c.batch * c.q_len, H = c.hidden, F = c.ffn, dh = H / c.heads;
  const int hidden = static_cast<int>(H);
  const StepAttentionShape shape{c.batch, c.q_len, c.heads, dh};
  const float scale = 1.f / sqrtf(static_cast<float>(dh));

  // A block's GEMM input: LN(x) for pre-LN, x itself for post-LN.
  auto open = [&](const void* block_in, const void* g, const void* b,
                  const void** in) -> cudaError_t {
    *in = block_in;
    if (!c.pre_ln) return cudaSuccess;
    *in = k.in;
    return layer_norm_fwd(dtype, block_in, g, b, k.in, k.mean, k.rstd, T, hidden, c.epsilon,
                          stream);
  };
  // out = residual + raw + bias, then LN for post-LN.
  auto close = [&](const void* raw, const void* bias, const void* residual, void* out,
                   const void* g, const void* b) -> cudaError_t {
    if (c.pre_ln)
      return bias_dropout_residual_fwd(dtype, raw, bias, residual, out, T, H, 0, 0.f, stream);
    LS_TRY(bias_dropout_residual_fwd(dtype, raw, bias, residual, k.pre, T, H, 0, 0.f, stream));
    return layer_norm_fwd(dtype, k.pre, g, b, out, k.mean, k.rstd, T, hidden, c.epsilon, stream);
  };

  // Self-attention over the cache and this call's positions.
  const void* in;
  LS_TRY(open(x, w.ln1_gamma, w.ln1_beta, &in));
  LS_TRY(gemm(false, false, T, 3 * H, H, in, H, 0, w.qkv_kernel, 3 * H, 0, k.qkv_raw, 0));
  LS_TRY(step_self_attention(dtype, k.qkv_raw, w.qkv_bias, cache_keys, cache_values, c.capacity,
                             cache_len, k.ctx, shape, scale, stream));
  LS_TRY(gemm(false, false, T, H, H, k.ctx, H, 0, w.out_kernel, H, 0, k.att_out, 0));
  LS_TRY(close(k.att_out, w.out_bias, x, k.x1, w.ln1_gamma, w.ln1_beta));

  // Encoder-decoder attention over the memorized keys / values.
  LS_TRY(open(k.x1, w.ln2_gamma, w.ln2_beta, &in));
  LS_TRY(gemm(false, false, T, H, H, in, H, 0, w.q_kernel, H, 0, k.q_raw, 0));
  LS_TRY(step_cross_attention(dtype, k.q_raw, w.q_bias, mem_keys, mem_values, c.mem_len,
                              mem_lengths, k.ctx, shape, scale, stream));
  LS_TRY(gemm(false, false, T, H, H, k.ctx, H, 0, w.cross_out_kernel, H, 0, k.att_out, 0));
  LS_TRY(close(k.att_out, w.cross_out_bias, k.x1, k.x2, w.ln2_gamma, w.ln2_beta));

  // FFN.
  LS_TRY(open(k.x2, w.ln3_gamma, w.ln3_beta, &in));
  LS_TRY(gemm(false, false, T, F, H, in, H, 0, w.ffn1_kernel, F, 0, k.ffn_pre, 0));
  LS_TRY(bias_act_dropout_fwd(dtype, c.act, k.ffn_pre, w.ffn1_bias, k.ffn_act, T, F, 0, 0.f,
                              stream));
  LS_TRY(gemm(false, false, T, H, F, k.ffn_act, F, 0, w.ffn2_kernel, H, 0, k.f_out, 0));
  return close(k.f_out, w.ffn2_bias, k.x2, y, w.ln3_gamma, w.ln3_beta);
}

size_t decoder_step_memorize_workspace_bytes(DType dtype, int64_t batch, int64_t mem_len,
                                             int64_t hidden) {
  Arena a(nullptr);
  a.take(2 * batch * mem_len * hidden * dtype_size(dtype));
  return a.used();
}

cudaError_t decoder_step_memorize(DType dtype, int64_t batch, int64_t mem_len, int64_t hidden,
                                  const void* memory, const void* kv_kernel, const void* kv_bias,
                                  void* mem_keys, void* mem_values, void* workspace,
                                  const Gemm& backend, cudaStream_t stream) {
  if (batch < 0 || mem_len < 0 || hidden < 1) return cudaErrorInvalidValue;
  const int64_t M = batch * mem_len, H = hidden;
  if (M == 0) return cudaSuccess;
  const RowGemm gemm{backend, dtype};
  const size_t es = dtype_size(dtype);
  Arena a(workspace);
  void* raw_k = a.take(M * H * es);
  void* raw_v = a.take(M * H * es);
  // Keys from kv_kernel's first H columns, values from the last H (ldb 2H).
  const char* wk = static_cast<const char*>(kv_kernel);
  LS_TRY(gemm(false, false, M, H, H, memory, H, 0, wk, 2 * H, 0, raw_k, 0));
  LS_TRY(gemm(false, false, M, H, H, memory, H, 0, wk + H * es, 2 * H, 0, raw_v, 0));
  // [M, H] + bias is already [batch, mem_len, heads, head_dim]: a bias add
  // (split_heads with one position per row moves nothing).
  const HeadsShape rows{1, M, 1, 1, H};
  LS_TRY(split_heads(dtype, raw_k, kv_bias, mem_keys, rows, stream));
  return split_heads(dtype, raw_v, static_cast<const char*>(kv_bias) + H * es, mem_values, rows,
                     stream);
}

}  // namespace lightseq
