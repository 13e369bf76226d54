// What the whole-layer orchestrations (encoder_layer.cc, decoder_layer.cc)
// share: row-major GEMMs through the caller's backend and error propagation.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"
#include "lightseq/gemm.h"

namespace lightseq {
namespace layers {

// Row-major GEMMs of one dtype through the caller's backend.
struct RowGemm {
  const Gemm& backend;
  DType dtype;
  cudaError_t operator()(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A,
                         int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb,
                         void* C, int64_t sc, int64_t batch = 1, float beta = 0.f) const {
    return backend.run(dtype, row_major_gemm(ta, tb, M, N, K, A, lda, sa, B, ldb, sb, C, sc,
                                             batch, beta));
  }
};

}  // namespace layers
}  // namespace lightseq

#define LS_TRY(expr)                  \
  do {                                \
    const cudaError_t e_ = (expr);    \
    if (e_ != cudaSuccess) return e_; \
  } while (0)
