// CPU twin of cuda/kernels/step_attention.cu (semantics: lightseq/step_attention.h):
// decoding attention over the caches in NeurST's layout, float32 scores.
#pragma once

#include <cstdint>

#include "lightseq/step_attention_shape.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

template <typename T>
void StepSelfAttentionCpu(tensorflow::thread::ThreadPool* pool, const T* qkv_raw,
                          const T* qkv_bias, T* cache_keys, T* cache_values, int64_t capacity,
                          int64_t cache_len, T* ctx, lightseq::StepAttentionShape s, float scale);

// mem_lengths must lie in [0, mem_len] or be null.
template <typename T>
void StepCrossAttentionCpu(tensorflow::thread::ThreadPool* pool, const T* q_raw, const T* q_bias,
                           const T* mem_keys, const T* mem_values, int64_t mem_len,
                           const int32_t* mem_lengths, T* ctx, lightseq::StepAttentionShape s,
                           float scale);

}  // namespace lightseq_tf
