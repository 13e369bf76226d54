// Post-attention / post-FFN epilogue: y = residual + dropout(x + bias).
// x, residual, y, dy, dx: [rows, hidden]; bias, dbias: [hidden]; masks as in
// dropout.h (element index = row * hidden + col). d(residual) = dy, so the
// backward computes only dx = dropout(dy) and dbias = column sums of dx.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"

namespace lightseq {

cudaError_t bias_dropout_residual_fwd(DType dtype, const void* x, const void* bias,
                                      const void* residual, void* y, int64_t rows,
                                      int64_t hidden, uint64_t seed, float rate,
                                      cudaStream_t stream);

// Scratch bytes for the backward (float32 partial column sums of dbias).
size_t bias_dropout_residual_bwd_workspace_bytes(DType dtype, int64_t rows, int64_t hidden);

// dx may be null: dbias only (the gradient of a bias whose input gradient
// is dy itself, e.g. a projection's bias, without writing a copy of dy).
cudaError_t bias_dropout_residual_bwd(DType dtype, const void* dy, void* dx, void* dbias,
                                      void* workspace, int64_t rows, int64_t hidden,
                                      uint64_t seed, float rate, cudaStream_t stream);

}  // namespace lightseq
