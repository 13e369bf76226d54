#include "cc/kernels/cpu/heads_cpu.h"

#include "Eigen/Core"

namespace lightseq_tf {
namespace {

// Calls f(merged_offset, split_offset) for each head vector of token rows
// [r0, r1) (row = b * len + l); vectors are head_dim long in both layouts.
template <typename F>
void ForRows(const lightseq::HeadsShape& s, int64_t r0, int64_t r1, F&& f) {
  const int64_t width = s.splits * s.heads * s.head_dim;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / s.len, l = r % s.len;
    for (int64_t n = 0; n < s.splits; ++n)
      for (int64_t h = 0; h < s.heads; ++h)
        f(r * width + (n * s.heads + h) * s.head_dim,
          (((n * s.batch + b) * s.heads + h) * s.len + l) * s.head_dim,
          (n * s.heads + h) * s.head_dim);
  }
}

int64_t RowCost(const lightseq::HeadsShape& s) { return 2 * s.splits * s.heads * s.head_dim; }

}  // namespace

template <typename T>
void SplitHeadsCpu(tensorflow::thread::ThreadPool* pool, const T* x, const T* bias, T* out,
                   lightseq::HeadsShape s) {
  pool->ParallelFor(s.batch * s.len, RowCost(s), [&](int64_t r0, int64_t r1) {
    ForRows(s, r0, r1, [&](int64_t m, int64_t sp, int64_t col) {
      for (int64_t k = 0; k < s.head_dim; ++k)
        out[sp + k] = bias ? static_cast<T>(static_cast<float>(x[m + k]) +
                                            static_cast<float>(bias[col + k]))
                           : x[m + k];
    });
  });
}

template <typename T>
void MergeHeadsCpu(tensorflow::thread::ThreadPool* pool, const T* x, T* out,
                   lightseq::HeadsShape s) {
  pool->ParallelFor(s.batch * s.len, RowCost(s), [&](int64_t r0, int64_t r1) {
    ForRows(s, r0, r1, [&](int64_t m, int64_t sp, int64_t) {
      for (int64_t k = 0; k < s.head_dim; ++k) out[m + k] = x[sp + k];
    });
  });
}

#define LIGHTSEQ_INSTANTIATE(T)                                                            \
  template void SplitHeadsCpu<T>(tensorflow::thread::ThreadPool*, const T*, const T*, T*,  \
                                 lightseq::HeadsShape);                                    \
  template void MergeHeadsCpu<T>(tensorflow::thread::ThreadPool*, const T*, T*,            \
                                 lightseq::HeadsShape);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
