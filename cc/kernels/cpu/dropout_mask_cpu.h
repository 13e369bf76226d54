// Dropout multipliers on the CPU, from the Philox stream of philox.h (the
// masks the CUDA kernels apply): shared by every CPU twin that drops.
#pragma once

#include <cstdint>

#include "lightseq/philox.h"

namespace lightseq_tf {

// m[i] = d.scale if flat element e0 + i is kept, else 0: one Philox call per
// 8 elements (none at rate 0, where everything is kept and the scale is 1).
// Eight calls at a time run in AVX2 lanes where the CPU has AVX2 (chosen at
// run time: TensorFlow's compile flags target baseline x86-64); the bits are
// philox.h's either way.
void FillDropoutMask(const lightseq::DropoutArgs& d, int64_t e0, int64_t n, float* m);

}  // namespace lightseq_tf
