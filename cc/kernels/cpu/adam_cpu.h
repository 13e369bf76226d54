// CPU twin of cuda/kernels/adam.cu: the same per-element order of float32
// operations (lightseq/adam_step.h), so results equal a numpy float32 step
// and the CUDA kernel bit for bit. Chunks of all tensors run on TF's pool.
#pragma once

#include <cstdint>

#include "lightseq/adam_step.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

template <typename G>
struct AdamTensorCpu {
  float* param;
  float* m;
  float* v;
  const G* grad;
  int64_t numel;
};

template <typename G>
void MultiTensorAdamCpu(tensorflow::thread::ThreadPool* pool, const AdamTensorCpu<G>* tensors,
                        int count, const lightseq::AdamScalars& s);

}  // namespace lightseq_tf
