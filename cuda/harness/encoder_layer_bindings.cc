// Harness bindings of the encoder layer (lightseq/encoder_layer.h) with the
// cuBLAS GEMM backend (cublas_backend.h). Compiled out where the toolkit has
// no cuBLAS (LIGHTSEQ_NO_CUBLAS, see build_harness.sh).
#ifndef LIGHTSEQ_NO_CUBLAS
#include <vector>

#include "harness.h"
#include "cublas_backend.h"
#include "lightseq/encoder_layer.h"

namespace harness {

namespace {

lightseq::EncoderLayerConfig config(int64_t batch, int64_t seq_len, int64_t hidden, int64_t heads,
                                    int64_t ffn, bool pre_ln, int act, float attn_dropout,
                                    float act_dropout, float hidden_dropout, float epsilon) {
  return {batch, seq_len, hidden, heads, ffn, pre_ln, to_act(act), attn_dropout, act_dropout,
          hidden_dropout, epsilon};
}

// Twelve pointers in the order of EncoderLayerParams.
lightseq::EncoderLayerParams params(const std::vector<std::uintptr_t>& p) {
  if (p.size() != 12) throw std::invalid_argument("expected 12 parameter pointers");
  auto v = [&](int i) { return ptr<void*>(p[i]); };
  return {v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8), v(9), v(10), v(11)};
}

}  // namespace

void bind_encoder_layer(py::module_& m) {
  m.def("encoder_layer_bytes",
        [](int dtype, int64_t batch, int64_t seq_len, int64_t hidden, int64_t heads, int64_t ffn,
           bool pre_ln) {
          const auto c = config(batch, seq_len, hidden, heads, ffn, pre_ln, 0, 0, 0, 0, 1e-6f);
          return py::make_tuple(lightseq::encoder_layer_saved_bytes(to_dtype(dtype), c),
                                lightseq::encoder_layer_workspace_bytes(to_dtype(dtype), c));
        });
  m.def("encoder_layer_fwd",
        [](int dtype, int64_t batch, int64_t seq_len, int64_t hidden, int64_t heads, int64_t ffn,
           bool pre_ln, int act, float attn_dropout, float act_dropout, float hidden_dropout,
           float epsilon, const std::vector<std::uintptr_t>& w, std::uintptr_t x,
           std::uintptr_t lengths, std::uintptr_t y, uint64_t seed, std::uintptr_t saved,
           std::uintptr_t workspace, std::uintptr_t stream) {
          check(lightseq::encoder_layer_fwd(
                    to_dtype(dtype),
                    config(batch, seq_len, hidden, heads, ffn, pre_ln, act, attn_dropout,
                           act_dropout, hidden_dropout, epsilon),
                    params(w), ptr<const void*>(x), ptr<const int32_t*>(lengths), ptr<void*>(y),
                    seed, ptr<void*>(saved), ptr<void*>(workspace), cublas_gemm_on(stream),
                    ptr<cudaStream_t>(stream)),
                "encoder_layer_fwd");
        });
  m.def("encoder_layer_bwd",
        [](int dtype, int64_t batch, int64_t seq_len, int64_t hidden, int64_t heads, int64_t ffn,
           bool pre_ln, int act, float attn_dropout, float act_dropout, float hidden_dropout,
           float epsilon, const std::vector<std::uintptr_t>& w, std::uintptr_t x,
           std::uintptr_t lengths, std::uintptr_t dy, std::uintptr_t dx,
           const std::vector<std::uintptr_t>& grads, uint64_t seed, std::uintptr_t saved,
           std::uintptr_t workspace, std::uintptr_t stream) {
          check(lightseq::encoder_layer_bwd(
                    to_dtype(dtype),
                    config(batch, seq_len, hidden, heads, ffn, pre_ln, act, attn_dropout,
                           act_dropout, hidden_dropout, epsilon),
                    params(w), ptr<const void*>(x), ptr<const int32_t*>(lengths),
                    ptr<const void*>(dy), ptr<void*>(dx), params(grads), seed,
                    ptr<const void*>(saved), ptr<void*>(workspace), cublas_gemm_on(stream),
                    ptr<cudaStream_t>(stream)),
                "encoder_layer_bwd");
        });
}

}  // namespace harness
#endif  // LIGHTSEQ_NO_CUBLAS
