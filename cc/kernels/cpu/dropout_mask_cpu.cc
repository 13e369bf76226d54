#include "cc/kernels/cpu/dropout_mask_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LIGHTSEQ_X86_AVX2 1
#endif

namespace lightseq_tf {
namespace {

constexpr int kPer = lightseq::kDropoutElemsPerCall;

// Elements [e, e + count) of call `group`, written from m[0].
inline void FillFromCall(const lightseq::DropoutArgs& d, const lightseq::Philox4& r, int k0,
                         int count, float* m) {
  for (int k = k0; k < k0 + count; ++k)
    *m++ = lightseq::dropout_keep(r, k, d.threshold) ? d.scale : 0.f;
}

// The scalar path: one call per 8 elements.
void FillScalar(const lightseq::DropoutArgs& d, int64_t e, int64_t n, float* m) {
  while (n > 0) {
    const int k0 = static_cast<int>(e % kPer);
    const int count = static_cast<int>(n < kPer - k0 ? n : kPer - k0);
    FillFromCall(d, lightseq::philox4x32_10(d.seed, static_cast<uint64_t>(e) / kPer), k0, count,
                 m);
    e += count;
    m += count;
    n -= count;
  }
}

#ifdef LIGHTSEQ_X86_AVX2
// High 32 bits of the eight 32x32-bit lane products.
__attribute__((target("avx2"))) inline __m256i MulHi(__m256i a, __m256i b) {
  const __m256i even = _mm256_mul_epu32(a, b);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32));
  return _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// philox4x32_10 of eight consecutive calls (groups g .. g + 7) in AVX2 lanes;
// out[w][j] = word w of call g + j.
__attribute__((target("avx2"))) void Philox8(uint64_t seed, uint64_t g, uint32_t out[4][8]) {
  alignas(32) uint32_t lo[8], hi[8];
  for (int j = 0; j < 8; ++j) {
    lo[j] = static_cast<uint32_t>(g + j);
    hi[j] = static_cast<uint32_t>((g + j) >> 32);
  }
  __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
  __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
  __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  for (int round = 0; round < 10; ++round) {
    const __m256i hi0 = MulHi(m0, c0), lo0 = _mm256_mullo_epi32(m0, c0);
    const __m256i hi1 = MulHi(m1, c2), lo1 = _mm256_mullo_epi32(m1, c2);
    const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1),
                                        _mm256_set1_epi32(static_cast<int>(k0)));
    const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3),
                                        _mm256_set1_epi32(static_cast<int>(k1)));
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[0]), c0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[1]), c1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[2]), c2);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[3]), c3);
}

// Whole calls only: e % 8 == 0, n % 64 == 0.
__attribute__((target("avx2"))) void FillAvx2(const lightseq::DropoutArgs& d, int64_t e,
                                              int64_t n, float* m) {
  uint32_t w[4][8];
  for (int64_t i = 0; i < n; i += 8 * kPer) {
    Philox8(d.seed, static_cast<uint64_t>(e + i) / kPer, w);
    for (int j = 0; j < 8; ++j) {
      const lightseq::Philox4 r{{w[0][j], w[1][j], w[2][j], w[3][j]}};
      FillFromCall(d, r, 0, kPer, m + i + j * kPer);
    }
  }
}

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

}  // namespace

void FillDropoutMask(const lightseq::DropoutArgs& d, int64_t e0, int64_t n, float* m) {
  if (d.threshold >= 65536u) {
    for (int64_t i = 0; i < n; ++i) m[i] = 1.f;
    return;
  }
#ifdef LIGHTSEQ_X86_AVX2
  if (HasAvx2() && n >= 8 * kPer) {
    // Scalar up to a call boundary, AVX2 over whole blocks of 8 calls, scalar tail.
    const int64_t head = (kPer - e0 % kPer) % kPer;
    FillScalar(d, e0, head, m);
    const int64_t body = (n - head) / (8 * kPer) * (8 * kPer);
    FillAvx2(d, e0 + head, body, m + head);
    FillScalar(d, e0 + head + body, n - head - body, m + head + body);
    return;
  }
#endif
  FillScalar(d, e0, n, m);
}

}  // namespace lightseq_tf
