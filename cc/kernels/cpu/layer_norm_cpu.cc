#include "cc/kernels/cpu/layer_norm_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "Eigen/Core"
#include "cc/kernels/cpu/column_sums_cpu.h"

namespace lightseq_tf {
namespace {

// Sum with 8 independent accumulators: vectorisable without -ffast-math and
// a smaller rounding error than one running sum.
inline float Sum(const float* p, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += p[i + k];
  for (; i < n; ++i) acc[i & 7] += p[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
void ToFloat(const T* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

// Cost per row for the thread pool's sharding heuristic (cycles, roughly).
int64_t RowCost(int64_t hidden) { return 12 * hidden; }

}  // namespace

template <typename T>
void LayerNormForwardCpu(tensorflow::thread::ThreadPool* pool, const T* x,
                         const T* gamma, const T* beta, T* y, float* mean,
                         float* rstd, int64_t rows, int64_t hidden, float epsilon) {
  std::vector<float> g(hidden), b(hidden);
  ToFloat(gamma, g.data(), hidden);
  ToFloat(beta, b.data(), hidden);
  const float inv_h = 1.f / static_cast<float>(hidden);
  pool->ParallelFor(rows, RowCost(hidden), [&](int64_t begin, int64_t end) {
    std::vector<float> v(hidden), d(hidden);
    for (int64_t r = begin; r < end; ++r) {
      ToFloat(x + r * hidden, v.data(), hidden);
      const float m = Sum(v.data(), hidden) * inv_h;
      for (int64_t j = 0; j < hidden; ++j) d[j] = (v[j] - m) * (v[j] - m);
      const float rs = 1.f / std::sqrt(Sum(d.data(), hidden) * inv_h + epsilon);
      T* yr = y + r * hidden;
      for (int64_t j = 0; j < hidden; ++j)
        yr[j] = static_cast<T>((v[j] - m) * rs * g[j] + b[j]);
      mean[r] = m;
      rstd[r] = rs;
    }
  });
}

int64_t LayerNormBackwardCpuWorkspace(int64_t rows, int64_t hidden) {
  return ColumnSumsWorkspace(rows, hidden, 2);
}

template <typename T>
void LayerNormBackwardCpu(tensorflow::thread::ThreadPool* pool, const T* dy,
                          const T* x, const float* mean, const float* rstd,
                          const T* gamma, T* dx, T* dgamma, T* dbeta,
                          float* workspace, int64_t rows, int64_t hidden) {
  std::vector<float> g(hidden);
  ToFloat(gamma, g.data(), hidden);
  const float inv_h = 1.f / static_cast<float>(hidden);
  T* const outs[2] = {dgamma, dbeta};
  ParallelRowsWithColumnSums<T, 2>(
      pool, rows, hidden, RowCost(hidden), workspace, outs,
      [&](int64_t r0, int64_t r1, float* const* parts) {
        float* pg = parts[0];
        float* pb = parts[1];
        std::vector<float> xh(hidden), gd(hidden), dv(hidden), t(hidden);
        for (int64_t r = r0; r < r1; ++r) {
          const float m = mean[r], rs = rstd[r];
          ToFloat(x + r * hidden, xh.data(), hidden);
          ToFloat(dy + r * hidden, dv.data(), hidden);
          for (int64_t j = 0; j < hidden; ++j) {
            xh[j] = (xh[j] - m) * rs;
            gd[j] = dv[j] * g[j];
            pg[j] += dv[j] * xh[j];
            pb[j] += dv[j];
            t[j] = gd[j] * xh[j];
          }
          const float c1 = Sum(gd.data(), hidden) * inv_h;
          const float c2 = Sum(t.data(), hidden) * inv_h;
          T* dxr = dx + r * hidden;
          for (int64_t j = 0; j < hidden; ++j)
            dxr[j] = static_cast<T>(rs * (gd[j] - c1 - xh[j] * c2));
        }
      });
}

#define LIGHTSEQ_INSTANTIATE(T)                                                  \
  template void LayerNormForwardCpu<T>(tensorflow::thread::ThreadPool*,         \
                                       const T*, const T*, const T*, T*, float*, \
                                       float*, int64_t, int64_t, float);         \
  template void LayerNormBackwardCpu<T>(                                        \
      tensorflow::thread::ThreadPool*, const T*, const T*, const float*,         \
      const float*, const T*, T*, T*, T*, float*, int64_t, int64_t);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
