// CPU twin of cuda/layers/decoder_step.cc (semantics: lightseq/decoder_step.h):
// the same steps over the CPU twins of the kernels between Eigen GEMMs on
// TensorFlow's thread pool, the same scratch layout.
#pragma once

#include <cstdint>

#include "lightseq/decoder_step_layout.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

// mem_lengths must lie in [0, mem_len] (the OpKernel checks them); the config
// must satisfy decoder_step_config_valid (checked there too).
template <typename T>
void DecoderStepCpu(tensorflow::thread::ThreadPool* pool, const lightseq::DecoderStepConfig& c,
                    const lightseq::DecoderLayerParams& w, const T* x, T* cache_keys,
                    T* cache_values, int64_t cache_len, const T* mem_keys, const T* mem_values,
                    const int32_t* mem_lengths, T* y, void* workspace);

}  // namespace lightseq_tf
