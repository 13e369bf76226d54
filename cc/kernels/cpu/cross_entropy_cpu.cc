#include "cc/kernels/cpu/cross_entropy_cpu.h"

#include <cmath>
#include <vector>

#include "Eigen/Core"

namespace lightseq_tf {
namespace {

struct Smoothing {
  float conf, low;
};

Smoothing MakeSmoothing(float eps, int64_t vocab) {
  return {1.f - eps, vocab > 1 ? static_cast<float>(eps / static_cast<double>(vocab - 1)) : 0.f};
}

int64_t RowCost(int64_t vocab) { return 30 * vocab; }

}  // namespace

template <typename T, typename I>
void CrossEntropyForwardCpu(tensorflow::thread::ThreadPool* pool, const T* logits,
                            const I* targets, float* loss, float* nll, float* lse, float* sums,
                            int64_t rows, int64_t vocab, float epsilon, int64_t padding_id) {
  const Smoothing q = MakeSmoothing(epsilon, vocab);
  pool->ParallelFor(rows, RowCost(vocab), [&](int64_t r0, int64_t r1) {
    Eigen::ArrayXf z(vocab);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = static_cast<int64_t>(targets[r]);
      if (t == padding_id) {
        loss[r] = nll[r] = lse[r] = 0.f;
        continue;
      }
      const T* zr = logits + r * vocab;
      for (int64_t j = 0; j < vocab; ++j) z[j] = static_cast<float>(zr[j]);
      Eigen::Index jmax;
      const float m = z.maxCoeff(&jmax);
      const float sz = z.sum();
      // Sum over all but the (first) maximum, whose term is exactly 1: lse =
      // m + log1p(s) keeps small losses accurate (see cross_entropy.cu).
      // Eigen's exp is vectorised.
      const float zmax = z[jmax];
      z[jmax] = -INFINITY;
      const float s = (z - m).exp().sum();
      z[jmax] = zmax;
      const float l1p = std::log1p(s);
      const float gap = m - z[t];
      lse[r] = m + l1p;
      nll[r] = gap + l1p;
      loss[r] = l1p + (q.conf - q.low) * gap + q.low * (static_cast<float>(vocab) * m - sz);
    }
  });
  float a = 0.f, b = 0.f, c = 0.f;  // fixed order
  for (int64_t r = 0; r < rows; ++r) {
    a += loss[r];
    b += nll[r];
    c += static_cast<int64_t>(targets[r]) != padding_id ? 1.f : 0.f;
  }
  sums[0] = a;
  sums[1] = b;
  sums[2] = c;
}

template <typename T, typename I>
void CrossEntropyBackwardCpu(tensorflow::thread::ThreadPool* pool, const float* dloss,
                             const float* dnll, const T* logits, const I* targets,
                             const float* lse, const float* nll, T* dlogits, int64_t rows,
                             int64_t vocab, float epsilon, int64_t padding_id) {
  const Smoothing q = MakeSmoothing(epsilon, vocab);
  pool->ParallelFor(rows, RowCost(vocab), [&](int64_t r0, int64_t r1) {
    Eigen::ArrayXf z(vocab);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = static_cast<int64_t>(targets[r]);
      T* dz = dlogits + r * vocab;
      if (t == padding_id) {
        for (int64_t j = 0; j < vocab; ++j) dz[j] = static_cast<T>(0.f);
        continue;
      }
      const T* zr = logits + r * vocab;
      const float gl = dloss[r], gn = dnll[r], g1 = gl + gn, base = -gl * q.low, l = lse[r];
      for (int64_t j = 0; j < vocab; ++j) z[j] = static_cast<float>(zr[j]);
      z = g1 * (z - l).exp() + base;  // vectorised exp
      for (int64_t j = 0; j < vocab; ++j) dz[j] = static_cast<T>(z[j]);
      // p_t - 1 = expm1(-nll) without cancellation (see cross_entropy.cu).
      const float pm1 = std::expm1(-nll[r]);
      dz[t] = static_cast<T>(gl * (pm1 + epsilon) + gn * pm1);
    }
  });
}

#define LIGHTSEQ_INSTANTIATE(T, I)                                                            \
  template void CrossEntropyForwardCpu<T, I>(tensorflow::thread::ThreadPool*, const T*,       \
                                             const I*, float*, float*, float*, float*,        \
                                             int64_t, int64_t, float, int64_t);               \
  template void CrossEntropyBackwardCpu<T, I>(tensorflow::thread::ThreadPool*, const float*,  \
                                              const float*, const T*, const I*, const float*, \
                                              const float*, T*, int64_t, int64_t, float, int64_t);
LIGHTSEQ_INSTANTIATE(float, int32_t)
LIGHTSEQ_INSTANTIATE(float, int64_t)
LIGHTSEQ_INSTANTIATE(Eigen::half, int32_t)
LIGHTSEQ_INSTANTIATE(Eigen::half, int64_t)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16, int32_t)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16, int64_t)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
