// lightseq::Gemm on a caller-owned cuBLAS handle (the harness's backend).
#pragma once

#include <cublas_v2.h>

#include "lightseq/gemm.h"

namespace lightseq {

class CublasGemm final : public Gemm {
 public:
  // Binds `handle` to `stream` (cublasSetStream) for the calls made through it.
  CublasGemm(cublasHandle_t handle, cudaStream_t stream);
  cudaError_t run(DType dtype, const GemmCall& call) const override;
  cudaError_t status() const { return status_; }  // of the stream binding

 private:
  cublasHandle_t handle_;
  cudaError_t status_;
};

}  // namespace lightseq
