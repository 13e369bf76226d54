// Shared by the harness's binding files: argument conversion and CUDA error
// reporting (a failing launcher raises RuntimeError naming it).
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include <cuda_runtime_api.h>

#include "lightseq/activation.h"
#include "lightseq/dtype.h"

namespace harness {

namespace py = pybind11;
using lightseq::DType;

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(err) +
                             " (" + cudaGetErrorString(err) + ")");
}

template <typename P>
P ptr(std::uintptr_t p) {
  return reinterpret_cast<P>(p);
}

inline lightseq::Activation to_act(int a) {
  if (a < 0 || a > 2) throw std::invalid_argument("act must be 0 (relu), 1 (gelu), 2 (gelu_tanh)");
  return static_cast<lightseq::Activation>(a);
}

inline DType to_dtype(int d) {
  if (d < 0 || d > 2) throw std::invalid_argument("dtype must be 0 (f32), 1 (f16) or 2 (bf16)");
  return static_cast<DType>(d);
}

// One per binding file (cuda/harness/<family>_bindings.cc), called by module.cc.
void bind_embedding(py::module_& m);
void bind_adam(py::module_& m);
void bind_encoder_layer(py::module_& m);
void bind_decoder_layer(py::module_& m);
void bind_decoder_step(py::module_& m);

}  // namespace harness
