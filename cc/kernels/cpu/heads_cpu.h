// CPU twin of cuda/kernels/heads.cu (head split + bias, head merge).
#pragma once

#include "lightseq/heads_shape.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

// bias may be null.
template <typename T>
void SplitHeadsCpu(tensorflow::thread::ThreadPool* pool, const T* x, const T* bias, T* out,
                   lightseq::HeadsShape s);

template <typename T>
void MergeHeadsCpu(tensorflow::thread::ThreadPool* pool, const T* x, T* out,
                   lightseq::HeadsShape s);

}  // namespace lightseq_tf
