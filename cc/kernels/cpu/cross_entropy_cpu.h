// CPU twin of cuda/kernels/cross_entropy.cu (same formulas, float32 math;
// two-pass max / sum-exp per row). Targets are validated by the OpKernel.
#pragma once

#include <cstdint>

#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

template <typename T, typename I>
void CrossEntropyForwardCpu(tensorflow::thread::ThreadPool* pool, const T* logits,
                            const I* targets, float* loss, float* nll, float* lse, float* sums,
                            int64_t rows, int64_t vocab, float epsilon, int64_t padding_id);

template <typename T, typename I>
void CrossEntropyBackwardCpu(tensorflow::thread::ThreadPool* pool, const float* dloss,
                             const float* dnll, const T* logits, const I* targets,
                             const float* lse, const float* nll, T* dlogits, int64_t rows,
                             int64_t vocab,
                             float epsilon, int64_t padding_id);

}  // namespace lightseq_tf
