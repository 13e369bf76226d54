// CPU twin of cuda/kernels/layer_norm.cu: same semantics (float32 statistics,
// mean/rstd saved for backward, dgamma/dbeta summed in a fixed order), run on
// TensorFlow's intra-op thread pool.
#pragma once

#include <cstdint>

#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

template <typename T>
void LayerNormForwardCpu(tensorflow::thread::ThreadPool* pool, const T* x,
                         const T* gamma, const T* beta, T* y, float* mean,
                         float* rstd, int64_t rows, int64_t hidden, float epsilon);

// float32 scratch elements LayerNormBackwardCpu needs for its per-chunk
// partial sums of dgamma and dbeta.
int64_t LayerNormBackwardCpuWorkspace(int64_t rows, int64_t hidden);

template <typename T>
void LayerNormBackwardCpu(tensorflow::thread::ThreadPool* pool, const T* dy,
                          const T* x, const float* mean, const float* rstd,
                          const T* gamma, T* dx, T* dgamma, T* dbeta,
                          float* workspace, int64_t rows, int64_t hidden);

}  // namespace lightseq_tf
