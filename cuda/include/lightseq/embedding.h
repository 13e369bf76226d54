// Transformer input embedding, fused: for token t of ids (any shape, flat
// index t, position p_t along the last axis of ids):
//   y[t, :] = dropout(scale * table[ids[t], :] + signal(pos_offset + p_t))
// signal is NeurST's sinusoid (lightseq/sinusoid.h) when `positions` is set,
// else 0; dropout uses the shared Philox stream (philox.h) over the flat
// element index t * hidden + c. NeurST's convention is padding_id < 0: a
// padding token is embedded like any other (its table row, scaled, plus its
// position). With padding_id >= 0 (fairseq / LightSeq convention) tokens equal
// to padding_id (which must be < vocab) give zero rows and no table gradient.
//
// Backward: dtable[v, :] = scale / (1 - rate) * sum over tokens t with
// ids[t] == v of keep(t, :) * dy[t, :], summed in float32 in a fixed order:
// a stable radix sort of the ids lines each id's tokens up in token order;
// warps sum chunks of 16 sorted positions, and a second pass adds the chunk
// sums of ids spanning several chunks in chunk order. No atomics: the
// gradient is the same bit for bit run to run, and a frequent id (padding,
// punctuation) is spread over many warps. Rows of absent ids are zero.
//
// Token ids outside [0, vocab) are never dereferenced: the forward writes a
// zero row and records the smallest such flat token index in *bad_index
// (which the caller initialises to kNoBadIndex and inspects after the
// stream), the backward skips them.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"
#include "lightseq/embedding_shape.h"

namespace lightseq {

// ids: int32 (ids_int64 false) or int64 [tokens]; table: [vocab, hidden] of
// table_dtype; y: [tokens, hidden] of dtype. bad_index: device, may be null.
cudaError_t embedding_fwd(DType dtype, DType table_dtype, const void* ids, bool ids_int64,
                          const void* table, void* y, EmbeddingShape shape,
                          const EmbeddingArgs& args, unsigned long long* bad_index,
                          cudaStream_t stream);

// Bytes of the workspace embedding_bwd needs.
size_t embedding_bwd_workspace_bytes(int64_t tokens, int64_t vocab, int64_t hidden);

// dy: [tokens, hidden] of dtype; dtable: [vocab, hidden] of table_dtype
// (fully written). workspace: embedding_bwd_workspace_bytes(...) bytes.
cudaError_t embedding_bwd(DType dtype, DType table_dtype, const void* dy, const void* ids,
                          bool ids_int64, void* dtable, EmbeddingShape shape,
                          const EmbeddingArgs& args, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream);

}  // namespace lightseq
