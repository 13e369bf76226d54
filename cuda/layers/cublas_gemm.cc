// CublasGemm: cublasGemmStridedBatchedEx with float32 accumulation (no TF32:
// the harness checks the layers against PyTorch in full float32).
#include "lightseq/cublas_gemm.h"

namespace lightseq {

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kFloat16: return CUDA_R_16F;
    case DType::kBFloat16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

}  // namespace

CublasGemm::CublasGemm(cublasHandle_t handle, cudaStream_t stream)
    : handle_(handle),
      status_(cublasSetStream(handle, stream) == CUBLAS_STATUS_SUCCESS ? cudaSuccess
                                                                        : cudaErrorUnknown) {}

cudaError_t CublasGemm::run(DType dtype, const GemmCall& g) const {
  if (status_ != cudaSuccess) return status_;
  const float alpha = 1.f;
  const cudaDataType_t t = cuda_type(dtype);
  const cublasStatus_t s = cublasGemmStridedBatchedEx(
      handle_, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k), &alpha, g.a, t,
      static_cast<int>(g.lda), g.stride_a, g.b, t, static_cast<int>(g.ldb), g.stride_b, &g.beta,
      g.c, t, static_cast<int>(g.ldc), g.stride_c, static_cast<int>(g.batch), CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT);
  return s == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorUnknown;
}

}  // namespace lightseq
