// Row-parallel work that also produces per-column sums (parameter gradients:
// LayerNorm's dgamma/dbeta, the biases' dbias) on TensorFlow's thread pool,
// deterministically: rows are split into a fixed number of chunks (independent
// of the thread count), each chunk accumulates its own float32 partial rows,
// and the partials are summed in chunk order.
#pragma once

#include <algorithm>
#include <cstdint>

#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

constexpr int64_t kColumnSumChunks = 64;

inline int64_t ColumnSumChunks(int64_t rows) {
  return std::max<int64_t>(1, std::min(rows, kColumnSumChunks));
}

// float32 workspace elements for `outputs` column sums of width `hidden`.
inline int64_t ColumnSumsWorkspace(int64_t rows, int64_t hidden, int outputs) {
  return outputs * ColumnSumChunks(rows) * hidden;
}

// fn(row_begin, row_end, float* partials[outputs]) processes rows and adds its
// column contributions into the (zeroed) partial rows; then out[k][c] =
// sum over chunks. `out` entries may be null (that sum is skipped).
template <typename T, int N, typename F>
void ParallelRowsWithColumnSums(tensorflow::thread::ThreadPool* pool, int64_t rows,
                                int64_t hidden, int64_t cost_per_row, float* workspace,
                                T* const (&out)[N], F&& fn) {
  const int64_t chunks = ColumnSumChunks(rows);
  const int64_t per_chunk = (rows + chunks - 1) / chunks;
  std::fill(workspace, workspace + N * chunks * hidden, 0.f);
  pool->ParallelFor(chunks, cost_per_row * std::max<int64_t>(per_chunk, 1),
                    [&](int64_t cbegin, int64_t cend) {
                      for (int64_t c = cbegin; c < cend; ++c) {
                        float* parts[N];
                        for (int k = 0; k < N; ++k) parts[k] = workspace + (k * chunks + c) * hidden;
                        const int64_t r0 = std::min(rows, c * per_chunk);
                        const int64_t r1 = std::min(rows, (c + 1) * per_chunk);
                        if (r0 < r1) fn(r0, r1, parts);
                      }
                    });
  pool->ParallelFor(hidden, N * chunks, [&](int64_t begin, int64_t end) {
    for (int k = 0; k < N; ++k) {
      if (!out[k]) continue;
      const float* base = workspace + k * chunks * hidden;
      for (int64_t j = begin; j < end; ++j) {
        float s = 0.f;
        for (int64_t c = 0; c < chunks; ++c) s += base[c * hidden + j];
        out[k][j] = static_cast<T>(s);
      }
    }
  });
}

}  // namespace lightseq_tf
