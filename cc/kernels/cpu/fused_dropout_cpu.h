// CPU twin of cuda/kernels/fused_dropout.cuh: y = [residual +] dropout(act(x
// [+ bias])) and its backward, with the same Philox masks (element index =
// row * hidden + col) and the same activation formulas.
#pragma once

#include <cstdint>

#include "lightseq/activation.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

// kIdentity is the plain dropout / bias-dropout-residual case.
enum class CpuAct { kIdentity, kRelu, kGelu, kGeluTanh };

CpuAct ToCpuAct(lightseq::Activation a);

// bias and residual may be null.
template <typename T>
void FusedDropoutForwardCpu(tensorflow::thread::ThreadPool* pool, CpuAct act, const T* x,
                            const T* bias, const T* residual, T* y, int64_t rows,
                            int64_t hidden, uint64_t seed, float rate);

int64_t FusedDropoutBackwardCpuWorkspace(int64_t rows, int64_t hidden);

// dx = dropout'(..) * dy; dbias (may be null) = column sums of dx. x/bias are
// read only when the activation needs its input.
template <typename T>
void FusedDropoutBackwardCpu(tensorflow::thread::ThreadPool* pool, CpuAct act, const T* dy,
                             const T* x, const T* bias, T* dx, T* dbias, float* workspace,
                             int64_t rows, int64_t hidden, uint64_t seed, float rate);

}  // namespace lightseq_tf
