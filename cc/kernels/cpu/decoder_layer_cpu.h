// CPU twin of cuda/layers/decoder_layer.cc: the same steps, dropout streams
// and `saved` layout (lightseq/decoder_layer_layout.h), on the CPU twins of
// the fused kernels between Eigen GEMMs on TensorFlow's thread pool.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lightseq/decoder_layer_layout.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

size_t DecoderLayerCpuWorkspaceBytes(int element_size, const lightseq::DecoderLayerConfig& c);

// mem_lengths must lie in [0, mem_len] (the OpKernel checks them).
template <typename T>
void DecoderLayerForwardCpu(tensorflow::thread::ThreadPool* pool,
                            const lightseq::DecoderLayerConfig& c,
                            const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                            const int32_t* mem_lengths, T* y, uint64_t seed, void* saved,
                            void* workspace);

// dx, dmemory and every gradient in `grads` are written (not accumulated).
template <typename T>
void DecoderLayerBackwardCpu(tensorflow::thread::ThreadPool* pool,
                             const lightseq::DecoderLayerConfig& c,
                             const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                             const int32_t* mem_lengths, const T* dy, T* dx, T* dmemory,
                             const lightseq::DecoderLayerParams& grads, uint64_t seed,
                             const void* saved, void* workspace);

}  // namespace lightseq_tf
