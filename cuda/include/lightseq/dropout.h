// Inverted dropout with counter-based (Philox) masks: y = keep(seed, e) ?
// x / (1 - rate) : 0 for every element index e of x (flattened). The mask is a
// pure function of (seed, e) -- see philox.h -- so the gradient is the same
// op applied to dy with the same seed, and no mask is ever stored.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"

namespace lightseq {

// 0 <= rate < 1; n elements; x and y may alias.
cudaError_t dropout_fwd(DType dtype, const void* x, void* y, int64_t n, uint64_t seed,
                        float rate, cudaStream_t stream);

}  // namespace lightseq
