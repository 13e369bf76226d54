// CPU twin of cuda/layers/encoder_layer.cc: the same steps, dropout streams
// and `saved` layout (lightseq/encoder_layer_layout.h), the CPU twins of the
// fused kernels between Eigen GEMMs on TensorFlow's thread pool.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lightseq/encoder_layer_layout.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

// Scratch bytes of either direction (elements of size `element_size`).
size_t EncoderLayerCpuWorkspaceBytes(int element_size, const lightseq::EncoderLayerConfig& c);

// Lengths must lie in [0, seq_len] (the OpKernel checks them).
template <typename T>
void EncoderLayerForwardCpu(tensorflow::thread::ThreadPool* pool,
                            const lightseq::EncoderLayerConfig& c,
                            const lightseq::EncoderLayerParams& w, const T* x,
                            const int32_t* lengths, T* y, uint64_t seed, void* saved,
                            void* workspace);

// dx and every gradient in `grads` are written (not accumulated).
template <typename T>
void EncoderLayerBackwardCpu(tensorflow::thread::ThreadPool* pool,
                             const lightseq::EncoderLayerConfig& c,
                             const lightseq::EncoderLayerParams& w, const T* x,
                             const int32_t* lengths, const T* dy, T* dx,
                             const lightseq::EncoderLayerParams& grads, uint64_t seed,
                             const void* saved, void* workspace);

}  // namespace lightseq_tf
