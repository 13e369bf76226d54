#include "cc/kernels/cpu/softmax_cpu.h"

#include <cmath>
#include <vector>

#include "Eigen/Core"
#include "cc/kernels/cpu/dropout_mask_cpu.h"

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

// Runs fn(row, visible, p, m) over all rows in parallel, with p the row's
// softmax over its visible keys (0 elsewhere) and m its dropout multipliers:
// what the forward and the (recomputing) backward both start from.
template <typename T, typename F>
void ForEachRow(tensorflow::thread::ThreadPool* pool, const T* scores, const int32_t* lengths,
                const lightseq::SoftmaxShape& s, float scale, bool causal, uint64_t seed,
                float rate, int64_t cost_per_element, F&& fn) {
  const lightseq::DropoutArgs d = lightseq::make_dropout_args(seed, rate);
  pool->ParallelFor(s.batch * s.heads * s.q_len, cost_per_element * s.k_len,
                    [&](int64_t r0, int64_t r1) {
                      std::vector<float> p(s.k_len), m(s.k_len);
                      for (int64_t r = r0; r < r1; ++r) {
                        const int64_t v = lightseq::softmax_visible(s, lengths, causal, r);
                        RowSoftmax(scores + r * s.k_len, v, s.k_len, scale, p.data());
                        FillDropoutMask(d, r * s.k_len, s.k_len, m.data());
                        fn(r, v, p.data(), m.data());
                      }
                    });
}

}  // namespace

template <typename T>
void AttnSoftmaxForwardCpu(tensorflow::thread::ThreadPool* pool, const T* scores,
                           const int32_t* lengths, T* probs, lightseq::SoftmaxShape s,
                           float scale, bool causal, uint64_t seed, float rate) {
  ForEachRow(pool, scores, lengths, s, scale, causal, seed, rate, 20,
             [&](int64_t r, int64_t, const float* p, const float* m) {
               T* y = probs + r * s.k_len;
               for (int64_t j = 0; j < s.k_len; ++j) y[j] = static_cast<T>(p[j] * m[j]);
             });
}

template <typename T>
void AttnSoftmaxBackwardCpu(tensorflow::thread::ThreadPool* pool, const T* dprobs,
                            const T* scores, const int32_t* lengths, T* dscores,
                            lightseq::SoftmaxShape s, float scale, bool causal, uint64_t seed,
                            float rate) {
  ForEachRow(pool, scores, lengths, s, scale, causal, seed, rate, 25,
             [&](int64_t r, int64_t v, const float* p, const float* m) {
               const T* g = dprobs + r * s.k_len;
               float dot = 0.f;
               for (int64_t j = 0; j < v; ++j) dot += static_cast<float>(g[j]) * m[j] * p[j];
               T* dz = dscores + r * s.k_len;
               for (int64_t j = 0; j < s.k_len; ++j)
                 dz[j] = static_cast<T>(
                     j < v ? scale * p[j] * (static_cast<float>(g[j]) * m[j] - dot) : 0.f);
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
