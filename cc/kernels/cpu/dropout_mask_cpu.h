// Dropout multipliers on the CPU, from the Philox stream of philox.h (the
// masks the CUDA kernels apply): shared by every CPU twin that drops.
#pragma once

#include <cstdint>

#include "lightseq/philox.h"

namespace lightseq_tf {

// m[i] = d.scale if flat element e0 + i is kept, else 0: one Philox call per
// 8 elements (none at rate 0, where everything is kept and the scale is 1).
inline void FillDropoutMask(const lightseq::DropoutArgs& d, int64_t e0, int64_t n, float* m) {
  if (d.threshold >= 65536u) {
    for (int64_t i = 0; i < n; ++i) m[i] = 1.f;
    return;
  }
  int64_t e = e0, i = 0;
  while (i < n) {
    const lightseq::Philox4 r =
        lightseq::philox4x32_10(d.seed, static_cast<uint64_t>(e) / lightseq::kDropoutElemsPerCall);
    for (int k = static_cast<int>(e % lightseq::kDropoutElemsPerCall);
         k < lightseq::kDropoutElemsPerCall && i < n; ++k, ++i, ++e)
      m[i] = lightseq::dropout_keep(r, k, d.threshold) ? d.scale : 0.f;
  }
}

}  // namespace lightseq_tf
