// Counter-based dropout randomness shared by the CUDA kernels and the CPU
// twins (host + device code): Philox4x32-10 (Salmon et al., SC'11), keyed by
// the 64-bit seed. One call yields 128 random bits, used as eight 16-bit
// uniforms for eight consecutive elements: element e takes the
// (e % 8)-th 16-bit half-word (little-endian order) of call e / 8. The mask of
// element e is therefore a pure function of (seed, e): identical on CPU and
// GPU, in any order or tiling, and never stored for backward (it is
// regenerated). 16 bits per element resolve the rate to 1/65536 and halve the
// generator cost per element, which is what bounds 16-bit elementwise kernels.
#pragma once

#include <cstdint>

#include "lightseq/host_device.h"

namespace lightseq {

struct Philox4 {
  uint32_t v[4];
};

LIGHTSEQ_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  return a * b;
#else
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
#endif
}

// The 128 random bits of call `group` under `seed`.
LIGHTSEQ_HD Philox4 philox4x32_10(uint64_t seed, uint64_t group) {
  uint32_t c0 = static_cast<uint32_t>(group), c1 = static_cast<uint32_t>(group >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Elements covered by one Philox call.
constexpr int kDropoutElemsPerCall = 8;

// An element is kept when its 16-bit uniform is below this threshold:
// round((1 - rate) * 65536), 65536 (all kept) for rate == 0. Computed in
// double on the host and passed to kernels as an integer, so the comparison
// is exact and the same everywhere.
inline uint32_t dropout_keep_threshold(float rate) {
  const double t = (1.0 - static_cast<double>(rate)) * 65536.0;
  return static_cast<uint32_t>(t + 0.5);
}

// Scale of the kept elements (inverted dropout).
inline float dropout_scale(float rate) {
  return static_cast<float>(1.0 / (1.0 - static_cast<double>(rate)));
}

inline bool valid_dropout_rate(float rate) { return rate >= 0.f && rate < 1.f; }

// Everything a kernel needs to apply one dropout mask.
struct DropoutArgs {
  uint64_t seed;
  uint32_t threshold;  // keep when the element's 16-bit uniform < threshold
  float scale;         // 1 when rate == 0 (then every element is kept)
};

inline DropoutArgs make_dropout_args(uint64_t seed, float rate) {
  return DropoutArgs{seed, dropout_keep_threshold(rate), dropout_scale(rate)};
}

// Keep decision of element k (0..7) of a call's output.
LIGHTSEQ_HD bool dropout_keep(const Philox4& r, int k, uint32_t threshold) {
  return ((r.v[k >> 1] >> (16 * (k & 1))) & 0xFFFFu) < threshold;
}

// Keep decision of a single element (scalar paths).
LIGHTSEQ_HD bool dropout_keep_element(uint64_t seed, uint64_t element, uint32_t threshold) {
  return dropout_keep(philox4x32_10(seed, element / kDropoutElemsPerCall),
                      static_cast<int>(element % kDropoutElemsPerCall), threshold);
}

}  // namespace lightseq
