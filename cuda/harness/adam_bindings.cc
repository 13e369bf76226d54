// Multi-tensor Adam / found-inf launchers: tensor lists come in as Python
// lists of device pointers (ints) plus a list of element counts.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "harness.h"
#include "lightseq/adam.h"

namespace harness {

namespace {

using Ptrs = std::vector<std::uintptr_t>;

void check_len(const Ptrs& list, size_t n, const char* name) {
  if (list.size() != n)
    throw std::invalid_argument(std::string(name) + " must have one entry per tensor (" +
                                std::to_string(n) + "), got " + std::to_string(list.size()));
}

}  // namespace

void bind_adam(py::module_& m) {
  m.def(
      "multi_tensor_adam",
      [](const Ptrs& params, const Ptrs& ms, const Ptrs& vs, const Ptrs& grads,
         const Ptrs& copies, const std::vector<int64_t>& numel, int grad_dtype, int copy_dtype,
         float lr, float beta1, float beta2, float eps, float weight_decay, bool adamw,
         int64_t step, float grad_scale, std::uintptr_t found_inf, std::uintptr_t stream) {
        const size_t n = numel.size();
        check_len(params, n, "params");
        check_len(ms, n, "ms");
        check_len(vs, n, "vs");
        check_len(grads, n, "grads");
        if (!copies.empty()) check_len(copies, n, "copies (or empty for none)");
        std::vector<lightseq::AdamTensor> list(n);
        for (size_t i = 0; i < n; ++i)
          list[i] = {ptr<float*>(params[i]), ptr<float*>(ms[i]), ptr<float*>(vs[i]),
                     ptr<const void*>(grads[i]), copies.empty() ? nullptr : ptr<void*>(copies[i]),
                     numel[i]};
        const lightseq::AdamHyper hyper{lr, beta1, beta2, eps, weight_decay, adamw, step,
                                        grad_scale};
        check(lightseq::multi_tensor_adam(list.data(), static_cast<int>(n), to_dtype(grad_dtype),
                                          to_dtype(copy_dtype), hyper,
                                          ptr<const float*>(found_inf),
                                          ptr<cudaStream_t>(stream)),
              "multi_tensor_adam");
      },
      py::arg("params"), py::arg("ms"), py::arg("vs"), py::arg("grads"), py::arg("copies"),
      py::arg("numel"), py::arg("grad_dtype"), py::arg("copy_dtype"), py::arg("lr"),
      py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("adamw"), py::arg("step"), py::arg("grad_scale"), py::arg("found_inf"),
      py::arg("stream"));

  m.def(
      "multi_tensor_found_inf",
      [](const Ptrs& grads, const std::vector<int64_t>& numel, int dtype, std::uintptr_t found_inf,
         bool reset, std::uintptr_t stream) {
        check_len(grads, numel.size(), "grads");
        std::vector<const void*> g(grads.size());
        for (size_t i = 0; i < g.size(); ++i) g[i] = ptr<const void*>(grads[i]);
        check(lightseq::multi_tensor_found_inf(g.data(), numel.data(),
                                               static_cast<int>(g.size()), to_dtype(dtype),
                                               ptr<float*>(found_inf), reset,
                                               ptr<cudaStream_t>(stream)),
              "multi_tensor_found_inf");
      },
      py::arg("grads"), py::arg("numel"), py::arg("dtype"), py::arg("found_inf"),
      py::arg("reset"), py::arg("stream"));
}

}  // namespace harness
