// FFN inner epilogue: y = dropout(act(x + bias)), act in {relu, gelu (exact,
// erf), gelu_tanh (tanh approximation)}. x, y, dy, dx: [rows, hidden]; bias,
// dbias: [hidden]; masks as in dropout.h. The backward recomputes act'(x+b)
// from x (the op's input), so forward saves nothing.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/activation.h"
#include "lightseq/dtype.h"

namespace lightseq {

cudaError_t bias_act_dropout_fwd(DType dtype, Activation act, const void* x, const void* bias,
                                 void* y, int64_t rows, int64_t hidden, uint64_t seed,
                                 float rate, cudaStream_t stream);

size_t bias_act_dropout_bwd_workspace_bytes(DType dtype, int64_t rows, int64_t hidden);

cudaError_t bias_act_dropout_bwd(DType dtype, Activation act, const void* dy, const void* x,
                                 const void* bias, void* dx, void* dbias, void* workspace,
                                 int64_t rows, int64_t hidden, uint64_t seed, float rate,
                                 cudaStream_t stream);

}  // namespace lightseq
