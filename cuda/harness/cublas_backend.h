// The harness's GEMM backend for the whole-layer bindings: one cuBLAS handle
// per process (the harness is single-threaded), bound to the call's stream.
#pragma once
#ifndef LIGHTSEQ_NO_CUBLAS

#include <cstdint>
#include <stdexcept>

#include "harness.h"
#include "lightseq/cublas_gemm.h"

namespace harness {

inline cublasHandle_t cublas_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t x = nullptr;
    if (cublasCreate(&x) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate failed");
    return x;
  }();
  return h;
}

inline lightseq::CublasGemm cublas_gemm_on(std::uintptr_t stream) {
  lightseq::CublasGemm g(cublas_handle(), ptr<cudaStream_t>(stream));
  check(g.status(), "cublasSetStream");
  return g;
}

}  // namespace harness
#endif  // LIGHTSEQ_NO_CUBLAS
