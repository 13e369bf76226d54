// pybind11 module over the framework-free CUDA launchers: the only way the
// GPU code runs where TensorFlow's GPU build cannot (the lent GPU machine).
// Device pointers and the stream are passed as integers (e.g. torch's
// tensor.data_ptr() and torch.cuda.current_stream().cuda_stream), so this
// module depends on neither TensorFlow nor PyTorch.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "lightseq/layer_norm.h"

namespace py = pybind11;
using lightseq::DType;

namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(err) +
                             " (" + cudaGetErrorString(err) + ")");
}

template <typename P>
P ptr(std::uintptr_t p) {
  return reinterpret_cast<P>(p);
}

DType to_dtype(int d) {
  if (d < 0 || d > 2) throw std::invalid_argument("dtype must be 0 (f32), 1 (f16) or 2 (bf16)");
  return static_cast<DType>(d);
}

}  // namespace

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
         std::uintptr_t rstd, std::uintptr_t gamma, std::uintptr_t dx,
         std::uintptr_t dgamma, std::uintptr_t dbeta, std::uintptr_t workspace,
         int64_t rows, int hidden, std::uintptr_t stream) {
        check(lightseq::layer_norm_bwd(
                  to_dtype(dtype), ptr<const void*>(dy), ptr<const void*>(x),
                  ptr<const float*>(mean), ptr<const float*>(rstd),
                  ptr<const void*>(gamma), ptr<void*>(dx), ptr<void*>(dgamma),
                  ptr<void*>(dbeta), ptr<void*>(workspace), rows, hidden,
                  ptr<cudaStream_t>(stream)),
              "layer_norm_bwd");
      },
      py::arg("dtype"), py::arg("dy"), py::arg("x"), py::arg("mean"),
      py::arg("rstd"), py::arg("gamma"), py::arg("dx"), py::arg("dgamma"),
      py::arg("dbeta"), py::arg("workspace"), py::arg("rows"), py::arg("hidden"),
      py::arg("stream"));
}
