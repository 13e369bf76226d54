// pybind11 module over the framework-free CUDA launchers: the only way the
// GPU code runs where TensorFlow's GPU build cannot (the lent GPU machine).
// Device pointers and the stream are passed as integers (e.g. torch's
// tensor.data_ptr() and torch.cuda.current_stream().cuda_stream), so this
// module depends on neither TensorFlow nor PyTorch.
#include <pybind11/pybind11.h>

#include "harness.h"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "lightseq/bias_act_dropout.h"
#include "lightseq/bias_dropout_residual.h"
#include "lightseq/cross_entropy.h"
#include "lightseq/dropout.h"
#include "lightseq/heads.h"
#include "lightseq/layer_norm.h"
#include "lightseq/softmax.h"

using namespace harness;  // NOLINT: the harness helpers

PYBIND11_MODULE(lightseq_cuda, m) {
  m.doc() = "lightseq_tf CUDA launchers (test harness; no framework)";
  m.attr("FLOAT32") = static_cast<int>(DType::kFloat32);
  m.attr("FLOAT16") = static_cast<int>(DType::kFloat16);
  m.attr("BFLOAT16") = static_cast<int>(DType::kBFloat16);
  m.attr("LAYER_NORM_MAX_HIDDEN") = lightseq::kLayerNormMaxHidden;

  m.def(
      "layer_norm_fwd",
      [](int dtype, std::uintptr_t x, std::uintptr_t gamma, std::uintptr_t beta,
         std::uintptr_t y, std::uintptr_t mean, std::uintptr_t rstd,
         int64_t rows, int hidden, float epsilon, std::uintptr_t stream) {
        check(lightseq::layer_norm_fwd(to_dtype(dtype), ptr<const void*>(x),
                                       ptr<const void*>(gamma), ptr<const void*>(beta),
                                       ptr<void*>(y), ptr<float*>(mean),
                                       ptr<float*>(rstd), rows, hidden, epsilon,
                                       ptr<cudaStream_t>(stream)),
              "layer_norm_fwd");
      },
      py::arg("dtype"), py::arg("x"), py::arg("gamma"), py::arg("beta"),
      py::arg("y"), py::arg("mean"), py::arg("rstd"), py::arg("rows"),
      py::arg("hidden"), py::arg("epsilon"), py::arg("stream"));

  m.def(
      "layer_norm_bwd_workspace_bytes",
      [](int dtype, int64_t rows, int hidden) {
        return lightseq::layer_norm_bwd_workspace_bytes(to_dtype(dtype), rows, hidden);
      },
      py::arg("dtype"), py::arg("rows"), py::arg("hidden"));

  m.def(
      "layer_norm_bwd",
      [](int dtype, std::uintptr_t dy, std::uintptr_t x, std::uintptr_t mean,
         std::uintptr_t rstd, std::uintptr_t gamma, std::uintptr_t dx, std::uintptr_t dx_add,
         std::uintptr_t dgamma, std::uintptr_t dbeta, std::uintptr_t workspace,
         int64_t rows, int hidden, std::uintptr_t stream) {
        check(lightseq::layer_norm_bwd(
                  to_dtype(dtype), ptr<const void*>(dy), ptr<const void*>(x),
                  ptr<const float*>(mean), ptr<const float*>(rstd),
                  ptr<const void*>(gamma), ptr<void*>(dx), ptr<const void*>(dx_add),
                  ptr<void*>(dgamma),
                  ptr<void*>(dbeta), ptr<void*>(workspace), rows, hidden,
                  ptr<cudaStream_t>(stream)),
              "layer_norm_bwd");
      },
      py::arg("dtype"), py::arg("dy"), py::arg("x"), py::arg("mean"),
      py::arg("rstd"), py::arg("gamma"), py::arg("dx"), py::arg("dx_add"), py::arg("dgamma"),
      py::arg("dbeta"), py::arg("workspace"), py::arg("rows"), py::arg("hidden"),
      py::arg("stream"));

  // ---- dropout family (seeds are passed as Python ints, taken modulo 2^64)
  m.def(
      "dropout_fwd",
      [](int dtype, std::uintptr_t x, std::uintptr_t y, int64_t n, uint64_t seed, float rate,
         std::uintptr_t stream) {
        check(lightseq::dropout_fwd(to_dtype(dtype), ptr<const void*>(x), ptr<void*>(y), n, seed,
                                    rate, ptr<cudaStream_t>(stream)),
              "dropout_fwd");
      },
      py::arg("dtype"), py::arg("x"), py::arg("y"), py::arg("n"), py::arg("seed"),
      py::arg("rate"), py::arg("stream"));

  m.def(
      "bias_dropout_residual_fwd",
      [](int dtype, std::uintptr_t x, std::uintptr_t bias, std::uintptr_t residual,
         std::uintptr_t y, int64_t rows, int64_t hidden, uint64_t seed, float rate,
         std::uintptr_t stream) {
        check(lightseq::bias_dropout_residual_fwd(
                  to_dtype(dtype), ptr<const void*>(x), ptr<const void*>(bias),
                  ptr<const void*>(residual), ptr<void*>(y), rows, hidden, seed, rate,
                  ptr<cudaStream_t>(stream)),
              "bias_dropout_residual_fwd");
      },
      py::arg("dtype"), py::arg("x"), py::arg("bias"), py::arg("residual"), py::arg("y"),
      py::arg("rows"), py::arg("hidden"), py::arg("seed"), py::arg("rate"), py::arg("stream"));

  m.def("bias_dropout_residual_bwd_workspace_bytes",
        [](int dtype, int64_t rows, int64_t hidden) {
          return lightseq::bias_dropout_residual_bwd_workspace_bytes(to_dtype(dtype), rows,
                                                                     hidden);
        });

  m.def(
      "bias_dropout_residual_bwd",
      [](int dtype, std::uintptr_t dy, std::uintptr_t dx, std::uintptr_t dbias,
         std::uintptr_t workspace, int64_t rows, int64_t hidden, uint64_t seed, float rate,
         std::uintptr_t stream) {
        check(lightseq::bias_dropout_residual_bwd(to_dtype(dtype), ptr<const void*>(dy),
                                                  ptr<void*>(dx), ptr<void*>(dbias),
                                                  ptr<void*>(workspace), rows, hidden, seed, rate,
                                                  ptr<cudaStream_t>(stream)),
              "bias_dropout_residual_bwd");
      },
      py::arg("dtype"), py::arg("dy"), py::arg("dx"), py::arg("dbias"), py::arg("workspace"),
      py::arg("rows"), py::arg("hidden"), py::arg("seed"), py::arg("rate"), py::arg("stream"));

  m.def(
      "bias_act_dropout_fwd",
      [](int dtype, int act, std::uintptr_t x, std::uintptr_t bias, std::uintptr_t y,
         int64_t rows, int64_t hidden, uint64_t seed, float rate, std::uintptr_t stream) {
        check(lightseq::bias_act_dropout_fwd(to_dtype(dtype), to_act(act), ptr<const void*>(x),
                                             ptr<const void*>(bias), ptr<void*>(y), rows, hidden,
                                             seed, rate, ptr<cudaStream_t>(stream)),
              "bias_act_dropout_fwd");
      },
      py::arg("dtype"), py::arg("act"), py::arg("x"), py::arg("bias"), py::arg("y"),
      py::arg("rows"), py::arg("hidden"), py::arg("seed"), py::arg("rate"), py::arg("stream"));

  m.def("bias_act_dropout_bwd_workspace_bytes", [](int dtype, int64_t rows, int64_t hidden) {
    return lightseq::bias_act_dropout_bwd_workspace_bytes(to_dtype(dtype), rows, hidden);
  });

  m.def(
      "bias_act_dropout_bwd",
      [](int dtype, int act, std::uintptr_t dy, std::uintptr_t x, std::uintptr_t bias,
         std::uintptr_t dx, std::uintptr_t dbias, std::uintptr_t workspace, int64_t rows,
         int64_t hidden, uint64_t seed, float rate, std::uintptr_t stream) {
        check(lightseq::bias_act_dropout_bwd(
                  to_dtype(dtype), to_act(act), ptr<const void*>(dy), ptr<const void*>(x),
                  ptr<const void*>(bias), ptr<void*>(dx), ptr<void*>(dbias),
                  ptr<void*>(workspace), rows, hidden, seed, rate, ptr<cudaStream_t>(stream)),
              "bias_act_dropout_bwd");
      },
      py::arg("dtype"), py::arg("act"), py::arg("dy"), py::arg("x"), py::arg("bias"),
      py::arg("dx"), py::arg("dbias"), py::arg("workspace"), py::arg("rows"), py::arg("hidden"),
      py::arg("seed"), py::arg("rate"), py::arg("stream"));

  // ---- label-smoothed cross-entropy
  m.def(
      "cross_entropy_fwd",
      [](int dtype, std::uintptr_t logits, std::uintptr_t targets, bool targets_int64,
         std::uintptr_t loss, std::uintptr_t nll, std::uintptr_t lse, std::uintptr_t sums,
         int64_t rows, int64_t vocab, float epsilon, int64_t padding_id, std::uintptr_t stream) {
        check(lightseq::cross_entropy_fwd(to_dtype(dtype), ptr<const void*>(logits),
                                          ptr<const void*>(targets), targets_int64,
                                          ptr<float*>(loss), ptr<float*>(nll), ptr<float*>(lse),
                                          ptr<float*>(sums), rows, vocab, epsilon, padding_id,
                                          ptr<cudaStream_t>(stream)),
              "cross_entropy_fwd");
      },
      py::arg("dtype"), py::arg("logits"), py::arg("targets"), py::arg("targets_int64"),
      py::arg("loss"), py::arg("nll"), py::arg("lse"), py::arg("sums"), py::arg("rows"),
      py::arg("vocab"), py::arg("epsilon"), py::arg("padding_id"), py::arg("stream"));

  m.def(
      "cross_entropy_bwd",
      [](int dtype, std::uintptr_t dloss, std::uintptr_t dnll, std::uintptr_t logits,
         std::uintptr_t targets, bool targets_int64, std::uintptr_t lse, std::uintptr_t nll,
         std::uintptr_t dlogits,
         int64_t rows, int64_t vocab, float epsilon, int64_t padding_id, std::uintptr_t stream) {
        check(lightseq::cross_entropy_bwd(to_dtype(dtype), ptr<const float*>(dloss),
                                          ptr<const float*>(dnll), ptr<const void*>(logits),
                                          ptr<const void*>(targets), targets_int64,
                                          ptr<const float*>(lse), ptr<const float*>(nll),
                                          ptr<void*>(dlogits), rows, vocab,
                                          epsilon, padding_id, ptr<cudaStream_t>(stream)),
              "cross_entropy_bwd");
      },
      py::arg("dtype"), py::arg("dloss"), py::arg("dnll"), py::arg("logits"), py::arg("targets"),
      py::arg("targets_int64"), py::arg("lse"), py::arg("nll"), py::arg("dlogits"), py::arg("rows"),
      py::arg("vocab"), py::arg("epsilon"), py::arg("padding_id"), py::arg("stream"));

  // ---- attention softmax (lengths: device pointer or 0 for none)
  m.def(
      "attn_softmax_fwd",
      [](int dtype, std::uintptr_t scores, std::uintptr_t lengths, std::uintptr_t probs,
         int64_t batch, int64_t heads, int64_t q_len, int64_t k_len, float scale, bool causal,
         uint64_t seed, float rate, std::uintptr_t stream) {
        check(lightseq::attn_softmax_fwd(to_dtype(dtype), ptr<const void*>(scores),
                                         ptr<const int32_t*>(lengths), ptr<void*>(probs),
                                         {batch, heads, q_len, k_len}, scale, causal, seed, rate,
                                         ptr<cudaStream_t>(stream)),
              "attn_softmax_fwd");
      });
  m.def(
      "attn_softmax_bwd",
      [](int dtype, std::uintptr_t dprobs, std::uintptr_t scores, std::uintptr_t lengths,
         std::uintptr_t dscores, int64_t batch, int64_t heads, int64_t q_len, int64_t k_len,
         float scale, bool causal, uint64_t seed, float rate, std::uintptr_t stream) {
        check(lightseq::attn_softmax_bwd(to_dtype(dtype), ptr<const void*>(dprobs),
                                         ptr<const void*>(scores), ptr<const int32_t*>(lengths),
                                         ptr<void*>(dscores), {batch, heads, q_len, k_len}, scale,
                                         causal, seed, rate, ptr<cudaStream_t>(stream)),
              "attn_softmax_bwd");
      });

  // ---- head split (+ bias) / merge (bias: device pointer or 0)
  m.def("split_heads", [](int dtype, std::uintptr_t x, std::uintptr_t bias, std::uintptr_t out,
                          int64_t splits, int64_t batch, int64_t len, int64_t heads,
                          int64_t head_dim, std::uintptr_t stream) {
    check(lightseq::split_heads(to_dtype(dtype), ptr<const void*>(x), ptr<const void*>(bias),
                                ptr<void*>(out), {splits, batch, len, heads, head_dim},
                                ptr<cudaStream_t>(stream)),
          "split_heads");
  });
  m.def("merge_heads", [](int dtype, std::uintptr_t x, std::uintptr_t out, int64_t splits,
                          int64_t batch, int64_t len, int64_t heads, int64_t head_dim,
                          std::uintptr_t stream) {
    check(lightseq::merge_heads(to_dtype(dtype), ptr<const void*>(x), ptr<void*>(out),
                                {splits, batch, len, heads, head_dim}, ptr<cudaStream_t>(stream)),
          "merge_heads");
  });
  bind_embedding(m);
  bind_adam(m);
  bind_decoder_step(m);
#ifndef LIGHTSEQ_NO_CUBLAS
  bind_encoder_layer(m);
  bind_decoder_layer(m);
#endif
}
