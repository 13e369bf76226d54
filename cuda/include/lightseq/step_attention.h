// Decoding attention for the incremental decoder step: one query row per
// (sentence b, head, new position i) against that sentence's keys, with the
// keys and values read where decoding keeps them (NeurST's cache layout
// [batch, length, heads, head_dim]), so nothing is transposed per step.
//   ctx[b*q_len + i, head*d:(head+1)*d] = softmax(scale * q . K^T) V
// q is projected but not biased yet (q_raw + q_bias, rounded to the dtype as
// a bias-add op would); scores and softmax are float32.
//
// step_self_attention: keys 0 .. cache_len + i (causal within the q_len new
//   positions). Positions < cache_len come from the cache; the new ones from
//   qkv_raw [batch*q_len, 3*hidden] + qkv_bias, and are written into the
//   cache at cache_len .. cache_len + q_len - 1 (in place: the kernel reads
//   no cache row it writes). Requires cache_len + q_len <= capacity.
// step_cross_attention: keys j < mem_lengths[b] (clamped to [0, mem_len];
//   null: all) of the memory's keys / values [batch, mem_len, heads, d]
//   (memorized once per sentence); a sentence with no visible key gets zeros.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"
#include "lightseq/step_attention_shape.h"

namespace lightseq {

cudaError_t step_self_attention(DType dtype, const void* qkv_raw, const void* qkv_bias,
                                void* cache_keys, void* cache_values, int64_t capacity,
                                int64_t cache_len, void* ctx, StepAttentionShape shape,
                                float scale, cudaStream_t stream);

cudaError_t step_cross_attention(DType dtype, const void* q_raw, const void* q_bias,
                                 const void* mem_keys, const void* mem_values, int64_t mem_len,
                                 const int32_t* mem_lengths, void* ctx, StepAttentionShape shape,
                                 float scale, cudaStream_t stream);

}  // namespace lightseq
