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

// Calls f(j, keep) for every key j of the row whose flat elements start at
// `start`, lane by lane in chunks of 8 consecutive flat elements -- one
// Philox call's worth -- so each call is made once, not once per element.
template <typename F>
__device__ __forceinline__ void for_row(int64_t start, int64_t k_len, uint64_t seed,
                                        uint32_t threshold, F&& f) {
  const bool drop = threshold < 65536u;
  for (int64_t c = start / 8 + threadIdx.x; c * 8 < start + k_len; c += 32) {
    Philox4 r{};
    if (drop) r = philox4x32_10(seed, static_cast<uint64_t>(c));
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int64_t j = c * 8 + k - start;
      if (j >= 0 && j < k_len) f(j, !drop || dropout_keep(r, k, threshold));
    }
  }
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
  const float ds = threshold < 65536u ? dscale : 1.f;
  for_row(row * s.k_len, s.k_len, seed, threshold, [&](int64_t j, bool keep) {
    float p = 0.f;
    if (j < r.visible && keep) p = __expf(scale * to_float<T>(z[j]) - m) * inv * ds;
    y[j] = from_float<T>(p);
  });
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
  const float ds = threshold < 65536u ? dscale : 1.f;
  // dp = dropout(dprobs); dot = sum_j dp_j p_j over visible keys.
  float dot = 0.f;
  for_row(row * s.k_len, s.k_len, seed, threshold, [&](int64_t j, bool keep) {
    if (j < r.visible && keep)
      dot += to_float<T>(g[j]) * ds * __expf(scale * to_float<T>(z[j]) - m) * inv;
  });
  dot = warp_allreduce_sum(dot);
  for_row(row * s.k_len, s.k_len, seed, threshold, [&](int64_t j, bool keep) {
    float d = 0.f;
    if (j < r.visible) {
      const float p = __expf(scale * to_float<T>(z[j]) - m) * inv;
      d = scale * p * ((keep ? to_float<T>(g[j]) * ds : 0.f) - dot);
    }
    dz[j] = from_float<T>(d);
  });
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
