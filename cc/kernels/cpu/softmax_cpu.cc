#include "cc/kernels/cpu/softmax_cpu.h"

#include <cmath>
#include <vector>

#include "Eigen/Core"
#include "lightseq/philox.h"

namespace lightseq_tf {
namespace {

// Softmax of the visible prefix of one row into p (float), zeros elsewhere.
template <typename T>
void RowSoftmax(const T* z, int64_t visible, int64_t k_len, float scale, float* p) {
  float m = -INFINITY;
  for (int64_t j = 0; j < visible; ++j) m = std::max(m, scale * static_cast<float>(z[j]));
  float sum = 0.f;
  for (int64_t j = 0; j < visible; ++j) sum += (p[j] = std::exp(scale * static_cast<float>(z[j]) - m));
  const float inv = visible > 0 ? 1.f / sum : 0.f;
  for (int64_t j = 0; j < visible; ++j) p[j] *= inv;
  for (int64_t j = visible; j < k_len; ++j) p[j] = 0.f;
}

// Dropout multiplier of each element of a row (scale or 0), as on the GPU.
void RowMask(uint64_t seed, uint32_t threshold, float dscale, int64_t e0, int64_t n, float* m) {
  for (int64_t j = 0; j < n; ++j)
    m[j] = threshold >= 65536u || lightseq::dropout_keep_element(
                                      seed, static_cast<uint64_t>(e0 + j), threshold)
               ? (threshold >= 65536u ? 1.f : dscale)
               : 0.f;
}

int64_t Rows(const lightseq::SoftmaxShape& s) { return s.batch * s.heads * s.q_len; }

}  // namespace

template <typename T>
void AttnSoftmaxForwardCpu(tensorflow::thread::ThreadPool* pool, const T* scores,
                           const int32_t* lengths, T* probs, lightseq::SoftmaxShape s,
                           float scale, bool causal, uint64_t seed, float rate) {
  const uint32_t thr = lightseq::dropout_keep_threshold(rate);
  const float dscale = lightseq::dropout_scale(rate);
  pool->ParallelFor(Rows(s), 20 * s.k_len, [&](int64_t r0, int64_t r1) {
    std::vector<float> p(s.k_len), m(s.k_len);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t v = lightseq::softmax_visible(s, lengths, causal, r);
      RowSoftmax(scores + r * s.k_len, v, s.k_len, scale, p.data());
      RowMask(seed, thr, dscale, r * s.k_len, s.k_len, m.data());
      T* y = probs + r * s.k_len;
      for (int64_t j = 0; j < s.k_len; ++j) y[j] = static_cast<T>(p[j] * m[j]);
    }
  });
}

template <typename T>
void AttnSoftmaxBackwardCpu(tensorflow::thread::ThreadPool* pool, const T* dprobs,
                            const T* scores, const int32_t* lengths, T* dscores,
                            lightseq::SoftmaxShape s, float scale, bool causal, uint64_t seed,
                            float rate) {
  const uint32_t thr = lightseq::dropout_keep_threshold(rate);
  const float dscale = lightseq::dropout_scale(rate);
  pool->ParallelFor(Rows(s), 25 * s.k_len, [&](int64_t r0, int64_t r1) {
    std::vector<float> p(s.k_len), m(s.k_len);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t v = lightseq::softmax_visible(s, lengths, causal, r);
      RowSoftmax(scores + r * s.k_len, v, s.k_len, scale, p.data());
      RowMask(seed, thr, dscale, r * s.k_len, s.k_len, m.data());
      const T* g = dprobs + r * s.k_len;
      float dot = 0.f;
      for (int64_t j = 0; j < v; ++j) dot += static_cast<float>(g[j]) * m[j] * p[j];
      T* dz = dscores + r * s.k_len;
      for (int64_t j = 0; j < s.k_len; ++j)
        dz[j] = static_cast<T>(j < v ? scale * p[j] * (static_cast<float>(g[j]) * m[j] - dot)
                                     : 0.f);
    }
  });
}

#define LIGHTSEQ_INSTANTIATE(T)                                                              \
  template void AttnSoftmaxForwardCpu<T>(tensorflow::thread::ThreadPool*, const T*,          \
                                         const int32_t*, T*, lightseq::SoftmaxShape, float,  \
                                         bool, uint64_t, float);                             \
  template void AttnSoftmaxBackwardCpu<T>(tensorflow::thread::ThreadPool*, const T*,         \
                                          const T*, const int32_t*, T*,                      \
                                          lightseq::SoftmaxShape, float, bool, uint64_t, float);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
