// The GEMM the layers call, behind a small interface: the harness runs it on
// its own cuBLAS handle (cublas_gemm.h), the TensorFlow OpKernels on TF's BLAS
// of the op's stream (TF's handle, workspace and TF32 / determinism settings),
// so cuda/layers itself needs neither cuBLAS nor a framework.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"

namespace lightseq {

// One column-major strided-batched GEMM, as cuBLAS takes it:
// C[i] = op(A[i]) op(B[i]) + beta C[i], op(A) m x k, op(B) k x n, i < batch,
// inputs and C in the call's dtype, float32 accumulation, alpha 1.
struct GemmCall {
  bool trans_a, trans_b;
  int64_t m, n, k;
  const void* a;
  int64_t lda, stride_a;
  const void* b;
  int64_t ldb, stride_b;
  void* c;
  int64_t ldc, stride_c;
  int64_t batch;
  float beta;
};

class Gemm {
 public:
  virtual ~Gemm() = default;
  // Enqueued on the backend's stream (the one the layer call was given).
  virtual cudaError_t run(DType dtype, const GemmCall& call) const = 0;
};

// Row-major C[M, N] = op(A)[M, K] op(B)[K, N] (+ beta C), `batch` times with
// element strides sa / sb / sc; lda / ldb are the stored row lengths. A
// column-major library computes it as C^T = op(B)^T op(A)^T.
inline GemmCall row_major_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A,
                               int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb,
                               void* C, int64_t sc, int64_t batch = 1, float beta = 0.f) {
  return GemmCall{tb, ta, N, M, K, B, ldb, sb, A, lda, sa, C, N, sc, batch, beta};
}

}  // namespace lightseq
