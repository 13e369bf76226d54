// Harness bindings of the decoder layer (lightseq/decoder_layer.h) with the
// cuBLAS GEMM backend. Compiled out where the toolkit has no cuBLAS.
#ifndef LIGHTSEQ_NO_CUBLAS
#include <vector>

#include "harness.h"
#include "cublas_backend.h"
#include "lightseq/decoder_layer.h"

namespace harness {

namespace {

lightseq::DecoderLayerConfig config(int64_t batch, int64_t tgt_len, int64_t mem_len,
                                    int64_t hidden, int64_t heads, int64_t ffn, bool pre_ln,
                                    int act, float attn_dropout, float act_dropout,
                                    float hidden_dropout, float epsilon) {
  return {batch,  tgt_len,      mem_len,     hidden,         heads,  ffn, pre_ln,
          to_act(act), attn_dropout, act_dropout, hidden_dropout, epsilon};
}

// Twenty pointers in the order of DecoderLayerParams.
lightseq::DecoderLayerParams params(const std::vector<std::uintptr_t>& p) {
  if (p.size() != 20) throw std::invalid_argument("expected 20 parameter pointers");
  auto v = [&](int i) { return ptr<void*>(p[i]); };
  return {v(0),  v(1),  v(2),  v(3),  v(4),  v(5),  v(6),  v(7),  v(8),  v(9),
          v(10), v(11), v(12), v(13), v(14), v(15), v(16), v(17), v(18), v(19)};
}

}  // namespace

void bind_decoder_layer(py::module_& m) {
  m.def("decoder_layer_bytes",
        [](int dtype, int64_t batch, int64_t tgt_len, int64_t mem_len, int64_t hidden,
           int64_t heads, int64_t ffn, bool pre_ln) {
          const auto c = config(batch, tgt_len, mem_len, hidden, heads, ffn, pre_ln, 0, 0, 0, 0,
                                1e-6f);
          return py::make_tuple(lightseq::decoder_layer_saved_bytes(to_dtype(dtype), c),
                                lightseq::decoder_layer_workspace_bytes(to_dtype(dtype), c));
        });
  m.def("decoder_layer_fwd",
        [](int dtype, int64_t batch, int64_t tgt_len, int64_t mem_len, int64_t hidden,
           int64_t heads, int64_t ffn, bool pre_ln, int act, float attn_dropout,
           float act_dropout, float hidden_dropout, float epsilon,
           const std::vector<std::uintptr_t>& w, std::uintptr_t x, std::uintptr_t memory,
           std::uintptr_t mem_lengths, std::uintptr_t y, uint64_t seed, std::uintptr_t saved,
           std::uintptr_t workspace, std::uintptr_t stream) {
          check(lightseq::decoder_layer_fwd(
                    to_dtype(dtype),
                    config(batch, tgt_len, mem_len, hidden, heads, ffn, pre_ln, act,
                           attn_dropout, act_dropout, hidden_dropout, epsilon),
                    params(w), ptr<const void*>(x), ptr<const void*>(memory),
                    ptr<const int32_t*>(mem_lengths), ptr<void*>(y), seed, ptr<void*>(saved),
                    ptr<void*>(workspace), cublas_gemm_on(stream), ptr<cudaStream_t>(stream)),
                "decoder_layer_fwd");
        });
  m.def("decoder_layer_bwd",
        [](int dtype, int64_t batch, int64_t tgt_len, int64_t mem_len, int64_t hidden,
           int64_t heads, int64_t ffn, bool pre_ln, int act, float attn_dropout,
           float act_dropout, float hidden_dropout, float epsilon,
           const std::vector<std::uintptr_t>& w, std::uintptr_t x, std::uintptr_t memory,
           std::uintptr_t mem_lengths, std::uintptr_t dy, std::uintptr_t dx,
           std::uintptr_t dmemory, const std::vector<std::uintptr_t>& grads, uint64_t seed,
           std::uintptr_t saved, std::uintptr_t workspace, std::uintptr_t stream) {
          check(lightseq::decoder_layer_bwd(
                    to_dtype(dtype),
                    config(batch, tgt_len, mem_len, hidden, heads, ffn, pre_ln, act,
                           attn_dropout, act_dropout, hidden_dropout, epsilon),
                    params(w), ptr<const void*>(x), ptr<const void*>(memory),
                    ptr<const int32_t*>(mem_lengths), ptr<const void*>(dy), ptr<void*>(dx),
                    ptr<void*>(dmemory), params(grads), seed, ptr<const void*>(saved),
                    ptr<void*>(workspace), cublas_gemm_on(stream), ptr<cudaStream_t>(stream)),
                "decoder_layer_bwd");
        });
}

}  // namespace harness
#endif  // LIGHTSEQ_NO_CUBLAS
