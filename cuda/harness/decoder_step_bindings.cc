// Harness bindings of incremental decoding: the decoding attention kernels
// (lightseq/step_attention.h, always) and the decoder step / memorize layer
// calls (lightseq/decoder_step.h, with the cuBLAS GEMM backend).
#include <vector>

#include "harness.h"
#include "lightseq/step_attention.h"
#ifndef LIGHTSEQ_NO_CUBLAS
#include "cublas_backend.h"
#include "lightseq/decoder_step.h"
#endif

namespace harness {

namespace {

#ifndef LIGHTSEQ_NO_CUBLAS
lightseq::DecoderStepConfig step_config(int64_t batch, int64_t q_len, int64_t capacity,
                                        int64_t mem_len, int64_t hidden, int64_t heads,
                                        int64_t ffn, bool pre_ln, int act, float epsilon) {
  return {batch, q_len, capacity, mem_len, hidden, heads, ffn, pre_ln, to_act(act), epsilon};
}

// The decoder layer's twenty pointers (DecoderLayerParams order; kv_* unread).
lightseq::DecoderLayerParams step_params(const std::vector<std::uintptr_t>& p) {
  if (p.size() != 20) throw std::invalid_argument("expected 20 parameter pointers");
  auto v = [&](int i) { return ptr<void*>(p[i]); };
  return {v(0),  v(1),  v(2),  v(3),  v(4),  v(5),  v(6),  v(7),  v(8),  v(9),
          v(10), v(11), v(12), v(13), v(14), v(15), v(16), v(17), v(18), v(19)};
}
#endif

}  // namespace

void bind_decoder_step(py::module_& m) {
  m.attr("STEP_ATTENTION_MAX_KEYS") = lightseq::kStepAttentionMaxKeys;
  m.attr("STEP_ATTENTION_MAX_HEAD_DIM") = lightseq::kStepAttentionMaxHeadDim;
  m.def("step_self_attention",
        [](int dtype, std::uintptr_t qkv_raw, std::uintptr_t qkv_bias, std::uintptr_t keys,
           std::uintptr_t values, int64_t capacity, int64_t cache_len, std::uintptr_t ctx,
           int64_t batch, int64_t q_len, int64_t heads, int64_t head_dim, float scale,
           std::uintptr_t stream) {
          check(lightseq::step_self_attention(
                    to_dtype(dtype), ptr<const void*>(qkv_raw), ptr<const void*>(qkv_bias),
                    ptr<void*>(keys), ptr<void*>(values), capacity, cache_len, ptr<void*>(ctx),
                    {batch, q_len, heads, head_dim}, scale, ptr<cudaStream_t>(stream)),
                "step_self_attention");
        });
  m.def("step_cross_attention",
        [](int dtype, std::uintptr_t q_raw, std::uintptr_t q_bias, std::uintptr_t keys,
           std::uintptr_t values, int64_t mem_len, std::uintptr_t mem_lengths,
           std::uintptr_t ctx, int64_t batch, int64_t q_len, int64_t heads, int64_t head_dim,
           float scale, std::uintptr_t stream) {
          check(lightseq::step_cross_attention(
                    to_dtype(dtype), ptr<const void*>(q_raw), ptr<const void*>(q_bias),
                    ptr<const void*>(keys), ptr<const void*>(values), mem_len,
                    ptr<const int32_t*>(mem_lengths), ptr<void*>(ctx),
                    {batch, q_len, heads, head_dim}, scale, ptr<cudaStream_t>(stream)),
                "step_cross_attention");
        });
#ifndef LIGHTSEQ_NO_CUBLAS
  m.def("decoder_step_workspace_bytes",
        [](int dtype, int64_t batch, int64_t q_len, int64_t capacity, int64_t mem_len,
           int64_t hidden, int64_t heads, int64_t ffn, bool pre_ln) {
          return lightseq::decoder_step_workspace_bytes(
              to_dtype(dtype),
              step_config(batch, q_len, capacity, mem_len, hidden, heads, ffn, pre_ln, 0, 1e-6f));
        });
  m.def("decoder_step_fwd",
        [](int dtype, int64_t batch, int64_t q_len, int64_t capacity, int64_t mem_len,
           int64_t hidden, int64_t heads, int64_t ffn, bool pre_ln, int act, float epsilon,
           const std::vector<std::uintptr_t>& w, std::uintptr_t x, std::uintptr_t keys,
           std::uintptr_t values, int64_t cache_len, std::uintptr_t mem_keys,
           std::uintptr_t mem_values, std::uintptr_t mem_lengths, std::uintptr_t y,
           std::uintptr_t workspace, std::uintptr_t stream) {
          check(lightseq::decoder_step_fwd(
                    to_dtype(dtype),
                    step_config(batch, q_len, capacity, mem_len, hidden, heads, ffn, pre_ln, act,
                                epsilon),
                    step_params(w), ptr<const void*>(x), ptr<void*>(keys), ptr<void*>(values),
                    cache_len, ptr<const void*>(mem_keys), ptr<const void*>(mem_values),
                    ptr<const int32_t*>(mem_lengths), ptr<void*>(y), ptr<void*>(workspace),
                    cublas_gemm_on(stream), ptr<cudaStream_t>(stream)),
                "decoder_step_fwd");
        });
  m.def("decoder_step_memorize_workspace_bytes", [](int dtype, int64_t batch, int64_t mem_len,
                                                    int64_t hidden) {
    return lightseq::decoder_step_memorize_workspace_bytes(to_dtype(dtype), batch, mem_len,
                                                           hidden);
  });
  m.def("decoder_step_memorize",
        [](int dtype, int64_t batch, int64_t mem_len, int64_t hidden, std::uintptr_t memory,
           std::uintptr_t kv_kernel, std::uintptr_t kv_bias, std::uintptr_t mem_keys,
           std::uintptr_t mem_values, std::uintptr_t workspace, std::uintptr_t stream) {
          check(lightseq::decoder_step_memorize(
                    to_dtype(dtype), batch, mem_len, hidden, ptr<const void*>(memory),
                    ptr<const void*>(kv_kernel), ptr<const void*>(kv_bias), ptr<void*>(mem_keys),
                    ptr<void*>(mem_values), ptr<void*>(workspace), cublas_gemm_on(stream),
                    ptr<cudaStream_t>(stream)),
                "decoder_step_memorize");
        });
#endif
}

}  // namespace harness
