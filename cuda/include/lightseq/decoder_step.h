// Incremental decoder layer step (beam search / greedy decoding; inference,
// no dropout, no backward): q_len new target positions per sentence after
// cache_len cached ones, one call per layer and step. Same math and weights
// as decoder_layer.h's forward with the dropouts off, so a run of steps
// reproduces the training forward position by position.
//
// Self-attention cache: keys / values [batch, capacity, heads, head_dim]
// (NeurST's layout: nothing is transposed per step). Rows < cache_len are
// read; this call's keys and values are written at rows cache_len ..
// cache_len + q_len - 1, in place. The encoder-decoder keys / values of the
// memory [batch, mem_len, heads, head_dim] come projected, with bias, from
// once per sentence (decoder_step_memorize), and are only read.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/decoder_step_layout.h"
#include "lightseq/gemm.h"

namespace lightseq {

// y [batch, q_len, hidden]. `w` as for decoder_layer.h; kv_kernel / kv_bias
// are not read (the memory comes projected).
cudaError_t decoder_step_fwd(DType dtype, const DecoderStepConfig& c,
                             const DecoderLayerParams& w, const void* x, void* cache_keys,
                             void* cache_values, int64_t cache_len, const void* mem_keys,
                             const void* mem_values, const int32_t* mem_lengths, void* y,
                             void* workspace, const Gemm& gemm, cudaStream_t stream);

// The memory's encoder-decoder keys and values, once per sentence:
// memory [batch, mem_len, hidden] -> keys, values [batch, mem_len, heads,
// head_dim] (= memory kv_kernel + kv_bias, split). workspace:
// decoder_step_memorize_workspace_bytes.
size_t decoder_step_memorize_workspace_bytes(DType dtype, int64_t batch, int64_t mem_len,
                                             int64_t hidden);
cudaError_t decoder_step_memorize(DType dtype, int64_t batch, int64_t mem_len, int64_t hidden,
                                  const void* memory, const void* kv_kernel, const void* kv_bias,
                                  void* mem_keys, void* mem_values, void* workspace,
                                  const Gemm& gemm, cudaStream_t stream);

}  // namespace lightseq
