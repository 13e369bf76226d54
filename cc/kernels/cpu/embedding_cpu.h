// CPU twin of cuda/kernels/embedding.cu: the same rows, positions, dropout
// mask and the same gradient summation order (per distinct id, its tokens'
// positions in the stable sort cut at multiples of 16, each piece summed in
// order, the pieces added in order, then times scale / (1 - rate)): float32
// gradients equal the GPU's bit for bit. Ids are validated by the OpKernel.
#pragma once

#include <cstdint>

#include "lightseq/embedding_shape.h"
#include "tensorflow/core/platform/threadpool.h"

// X(T, TT) for every supported (output, table) type pair: the table is
// float32 (mixed precision keeps float32 variables) or the output type. One
// list for the CPU twin's instantiations and the kernel registrations.
#define LIGHTSEQ_EMBEDDING_TYPES(X)                                                  \
  X(float, float) X(Eigen::half, float) X(Eigen::half, Eigen::half)                \
  X(Eigen::bfloat16, float) X(Eigen::bfloat16, Eigen::bfloat16)

namespace lightseq_tf {

template <typename T, typename TT, typename I>
void EmbeddingForwardCpu(tensorflow::thread::ThreadPool* pool, const I* ids, const TT* table,
                         T* y, const lightseq::EmbeddingShape& s,
                         const lightseq::EmbeddingArgs& a);

template <typename T, typename TT, typename I>
void EmbeddingBackwardCpu(tensorflow::thread::ThreadPool* pool, const T* dy, const I* ids,
                          TT* dtable, const lightseq::EmbeddingShape& s,
                          const lightseq::EmbeddingArgs& a);

}  // namespace lightseq_tf
