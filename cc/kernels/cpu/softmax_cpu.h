// CPU twin of cuda/kernels/softmax.cu (same masks, dropout stream and
// recompute-in-backward scheme). Lengths are validated by the OpKernel.
#pragma once

#include <cstdint>

#include "lightseq/softmax_shape.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

template <typename T>
void AttnSoftmaxForwardCpu(tensorflow::thread::ThreadPool* pool, const T* scores,
                           const int32_t* lengths, T* probs, lightseq::SoftmaxShape s,
                           float scale, bool causal, uint64_t seed, float rate);

template <typename T>
void AttnSoftmaxBackwardCpu(tensorflow::thread::ThreadPool* pool, const T* dprobs,
                            const T* scores, const int32_t* lengths, T* dscores,
                            lightseq::SoftmaxShape s, float scale, bool causal, uint64_t seed,
                            float rate);

}  // namespace lightseq_tf
