// Attention softmax (scale + key-padding/causal mask + dropout), one warp
// per row; the row is re-read from L1 between passes (rows are short), so
// device memory sees one read and one write per element.
#include "lightseq/softmax.h"

#include <cmath>

#include "common.cuh"
#include "lightseq/philox.h"

namespace lightseq {
namespace {

using detail::from_float;
using detail::to_float;
using detail::warp_allreduce_sum;

constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ float warp_allreduce_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

struct RowInfo {
  int64_t row;      // flat row index over [batch, heads, q_len]
  int64_t visible;  // keys 0 .. visible-1 are visible
};

__device__ __forceinline__ RowInfo row_info(const SoftmaxShape& s, const int32_t* lengths,
                                            bool causal, int64_t row) {
  return {row, softmax_visible(s, lengths, causal, row)};
}

// max and sum of exp over the visible keys of one row (warp-wide).
template <typename T>
__device__ __forceinline__ void row_stats(const T* z, int64_t visible, float scale, float* m,
                                          float* sum) {
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < visible; j += 32) mx = fmaxf(mx, scale * to_float<T>(z[j]));
  mx = warp_allreduce_max(mx);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < visible; j += 32) s += __expf(scale * to_float<T>(z[j]) - mx);
  *m = mx;
  *sum = warp_allreduce_sum(s);
}

template <typename T>
__global__ void softmax_fwd_kernel(const T* __restrict__ scores, const int32_t* __restrict__ lengths,
                                   T* __restrict__ probs, SoftmaxShape s, int64_t rows,
                                   float scale, bool causal, uint64_t seed, uint32_t threshold,
                                   float dscale) {
  const int64_t row = blockIdx.x * (int64_t)kWarpsPerBlock + threadIdx.y;
  if (row >= rows) return;  // uniform per warp
  const RowInfo r = row_info(s, lengths, causal, row);
  const T* z = scores + row * s.k_len;
  T* y = probs + row * s.k_len;
  float m = 0.f, sum = 1.f;
  if (r.visible > 0) row_stats(z, r.visible, scale, &m, &sum);
  const float inv = 1.f / sum;
  for (int64_t j = threadIdx.x; j < s.k_len; j += 32) {
    float p = 0.f;
    if (j < r.visible) {
      p = __expf(scale * to_float<T>(z[j]) - m) * inv;
      if (threshold < 65536u)
        p = dropout_keep_element(seed, static_cast<uint64_t>(row * s.k_len + j), threshold)
                ? p * dscale : 0.f;
    }
    y[j] = from_float<T>(p);
  }
}

template <typename T>
__global__ void softmax_bwd_kernel(const T* __restrict__ dprobs, const T* __restrict__ scores,
                                   const int32_t* __restrict__ lengths, T* __restrict__ dscores,
                                   SoftmaxShape s, int64_t rows, float scale, bool causal,
                                   uint64_t seed, uint32_t threshold, float dscale) {
  const int64_t row = blockIdx.x * (int64_t)kWarpsPerBlock + threadIdx.y;
  if (row >= rows) return;
  const RowInfo r = row_info(s, lengths, causal, row);
  const T* z = scores + row * s.k_len;
  const T* g = dprobs + row * s.k_len;
  T* dz = dscores + row * s.k_len;
  float m = 0.f, sum = 1.f;
  if (r.visible > 0) row_stats(z, r.visible, scale, &m, &sum);
  const float inv = 1.f / sum;
  auto dp_at = [&](int64_t j) {
    float d = to_float<T>(g[j]);
    if (threshold < 65536u)
      d = dropout_keep_element(seed, static_cast<uint64_t>(row * s.k_len + j), threshold)
              ? d * dscale : 0.f;
    return d;
  };
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < r.visible; j += 32)
    dot += dp_at(j) * __expf(scale * to_float<T>(z[j]) - m) * inv;
  dot = warp_allreduce_sum(dot);
  for (int64_t j = threadIdx.x; j < s.k_len; j += 32) {
    float d = 0.f;
    if (j < r.visible) {
      const float p = __expf(scale * to_float<T>(z[j]) - m) * inv;
      d = scale * p * (dp_at(j) - dot);
    }
    dz[j] = from_float<T>(d);
  }
}

bool valid(const SoftmaxShape& s, float rate) {
  return s.batch >= 0 && s.heads >= 0 && s.q_len >= 0 && s.k_len >= 0 && rate >= 0.f &&
         rate < 1.f;
}

int64_t rows_of(const SoftmaxShape& s) { return s.batch * s.heads * s.q_len; }

}  // namespace

cudaError_t attn_softmax_fwd(DType dtype, const void* scores, const int32_t* lengths,
                             void* probs, SoftmaxShape shape, float scale, bool causal,
                             uint64_t seed, float rate, cudaStream_t stream) {
  if (!valid(shape, rate)) return cudaErrorInvalidValue;
  const int64_t rows = rows_of(shape);
  if (rows == 0 || shape.k_len == 0) return cudaSuccess;
  const uint32_t thr = dropout_keep_threshold(rate);
  const float dscale = dropout_scale(rate);
  const unsigned grid = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  return detail::dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    softmax_fwd_kernel<T><<<grid, dim3(32, kWarpsPerBlock), 0, stream>>>(
        static_cast<const T*>(scores), lengths, static_cast<T*>(probs), shape, rows, scale,
        causal, seed, thr, dscale);
    return cudaGetLastError();
  });
}

cudaError_t attn_softmax_bwd(DType dtype, const void* dprobs, const void* scores,
                             const int32_t* lengths, void* dscores, SoftmaxShape shape,
                             float scale, bool causal, uint64_t seed, float rate,
                             cudaStream_t stream) {
  if (!valid(shape, rate)) return cudaErrorInvalidValue;
  const int64_t rows = rows_of(shape);
  if (rows == 0 || shape.k_len == 0) return cudaSuccess;
  const uint32_t thr = dropout_keep_threshold(rate);
  const float dscale = dropout_scale(rate);
  const unsigned grid = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  return detail::dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    softmax_bwd_kernel<T><<<grid, dim3(32, kWarpsPerBlock), 0, stream>>>(
        static_cast<const T*>(dprobs), static_cast<const T*>(scores), lengths,
        static_cast<T*>(dscores), shape, rows, scale, causal, seed, thr, dscale);
    return cudaGetLastError();
  });
}

}  // namespace lightseq
