// Head split / merge around attention (pure permutations, the split fused
// with the QKV bias add):
//   split: x [B, L, n*heads*d] (+ bias [n*heads*d]) -> out [n, B, heads, L, d]
//   merge: x [n, B, heads, L, d] -> out [B, L, n*heads*d]
// n = 3 for a fused QKV projection, 2 for KV, 1 for Q or the attention output.
// Each is the other's gradient (dbias is the column sum of the merged grad).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"
#include "lightseq/heads_shape.h"

namespace lightseq {

// bias may be null.
cudaError_t split_heads(DType dtype, const void* x, const void* bias, void* out, HeadsShape s,
                        cudaStream_t stream);

cudaError_t merge_heads(DType dtype, const void* x, void* out, HeadsShape s,
                        cudaStream_t stream);

}  // namespace lightseq
