// LayerNorm over the last axis: y = (x - mean) * rstd * gamma + beta.
//
// x, y, dy, dx: [rows, hidden] row-major, element type `dtype`.
// gamma, beta, dgamma, dbeta: [hidden], element type `dtype`.
// mean, rstd: [rows] float32, written by forward, read by backward.
// All statistics and reductions accumulate in float32.
//
// Launchers only enqueue work on `stream`; they return cudaErrorInvalidValue for
// arguments outside the documented limits (callers validate first and report
// them properly) and otherwise the launch status.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"
#include "lightseq/limits.h"

namespace lightseq {

cudaError_t layer_norm_fwd(DType dtype, const void* x, const void* gamma,
                           const void* beta, void* y, float* mean, float* rstd,
                           int64_t rows, int hidden, float epsilon,
                           cudaStream_t stream);

// Bytes of scratch memory layer_norm_bwd needs (float32 per-block partial sums
// of dgamma and dbeta); depends only on the problem size.
size_t layer_norm_bwd_workspace_bytes(DType dtype, int64_t rows, int hidden);

// dx = LN'(dy) + dx_add: dx_add (may be null, may equal dx) is the gradient
// reaching the LayerNorm's input by another path (a pre-LN block's residual),
// added in the same pass instead of by a separate kernel.
cudaError_t layer_norm_bwd(DType dtype, const void* dy, const void* x,
                           const float* mean, const float* rstd,
                           const void* gamma, void* dx, const void* dx_add, void* dgamma,
                           void* dbeta, void* workspace, int64_t rows,
                           int hidden, cudaStream_t stream);

}  // namespace lightseq
