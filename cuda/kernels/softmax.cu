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
// (With rate 0 every element is kept and no call is made.)
template <typename F>
__device__ __forceinline__ void for_row(int64_t start, int64_t k_len, const DropoutArgs& d,
                                        F&& f) {
  const bool drop = d.threshold < 65536u;
  for (int64_t c = start / 8 + threadIdx.x; c * 8 < start + k_len; c += 32) {
    Philox4 r{};
    if (drop) r = philox4x32_10(d.seed, static_cast<uint64_t>(c));
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int64_t j = c * 8 + k - start;
      if (j >= 0 && j < k_len) f(j, !drop || dropout_keep(r, k, d.threshold));
    }
  }
}

template <typename T>
__global__ void softmax_fwd_kernel(const T* __restrict__ scores, const int32_t* __restrict__ lengths,
                                   T* __restrict__ probs, SoftmaxShape s, int64_t rows,
                                   float scale, bool causal, DropoutArgs d) {
  const int64_t row = blockIdx.x * (int64_t)kWarpsPerBlock + threadIdx.y;
  if (row >= rows) return;  // uniform per warp
  const int64_t visible = softmax_visible(s, lengths, causal, row);
  const T* z = scores + row * s.k_len;
  T* y = probs + row * s.k_len;
  float m = 0.f, sum = 1.f;
  if (visible > 0) row_stats(z, visible, scale, &m, &sum);
  const float inv = 1.f / sum;
  for_row(row * s.k_len, s.k_len, d, [&](int64_t j, bool keep) {
    float p = 0.f;
    if (j < visible && keep) p = __expf(scale * to_float<T>(z[j]) - m) * inv * d.scale;
    y[j] = from_float<T>(p);
  });
}

template <typename T>
__global__ void softmax_bwd_kernel(const T* __restrict__ dprobs, const T* __restrict__ scores,
                                   const int32_t* __restrict__ lengths, T* __restrict__ dscores,
                                   SoftmaxShape s, int64_t rows, float scale, bool causal,
                                   DropoutArgs d) {
  const int64_t row = blockIdx.x * (int64_t)kWarpsPerBlock + threadIdx.y;
  if (row >= rows) return;
  const int64_t visible = softmax_visible(s, lengths, causal, row);
  const T* z = scores + row * s.k_len;
  const T* g = dprobs + row * s.k_len;
  T* dz = dscores + row * s.k_len;
  float m = 0.f, sum = 1.f;
  if (visible > 0) row_stats(z, visible, scale, &m, &sum);
  const float inv = 1.f / sum;
  // dp = dropout(dprobs); dot = sum_j dp_j p_j over visible keys.
  float dot = 0.f;
  for_row(row * s.k_len, s.k_len, d, [&](int64_t j, bool keep) {
    if (j < visible && keep)
      dot += to_float<T>(g[j]) * d.scale * __expf(scale * to_float<T>(z[j]) - m) * inv;
  });
  dot = warp_allreduce_sum(dot);
  for_row(row * s.k_len, s.k_len, d, [&](int64_t j, bool keep) {
    float dv = 0.f;
    if (j < visible) {
      const float p = __expf(scale * to_float<T>(z[j]) - m) * inv;
      dv = scale * p * ((keep ? to_float<T>(g[j]) * d.scale : 0.f) - dot);
    }
    dz[j] = from_float<T>(dv);
  });
}

// Validates, then calls launch(T(), grid, block, rows, dropout) for the
// dtype: the part the forward and backward launchers share.
template <typename F>
cudaError_t launch_rows(DType dtype, const SoftmaxShape& s, uint64_t seed, float rate,
                        F&& launch) {
  if (s.batch < 0 || s.heads < 0 || s.q_len < 0 || s.k_len < 0 || !valid_dropout_rate(rate))
    return cudaErrorInvalidValue;
  const int64_t rows = s.batch * s.heads * s.q_len;
  if (rows == 0 || s.k_len == 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const DropoutArgs d = make_dropout_args(seed, rate);
  return detail::dispatch_dtype(dtype, [&](auto t) {
    launch(t, grid, dim3(32, kWarpsPerBlock), rows, d);
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t attn_softmax_fwd(DType dtype, const void* scores, const int32_t* lengths,
                             void* probs, SoftmaxShape shape, float scale, bool causal,
                             uint64_t seed, float rate, cudaStream_t stream) {
  return launch_rows(dtype, shape, seed, rate,
                     [&](auto t, unsigned grid, dim3 block, int64_t rows, DropoutArgs d) {
                       using T = decltype(t);
                       softmax_fwd_kernel<T><<<grid, block, 0, stream>>>(
                           static_cast<const T*>(scores), lengths, static_cast<T*>(probs), shape,
                           rows, scale, causal, d);
                     });
}

cudaError_t attn_softmax_bwd(DType dtype, const void* dprobs, const void* scores,
                             const int32_t* lengths, void* dscores, SoftmaxShape shape,
                             float scale, bool causal, uint64_t seed, float rate,
                             cudaStream_t stream) {
  return launch_rows(dtype, shape, seed, rate,
                     [&](auto t, unsigned grid, dim3 block, int64_t rows, DropoutArgs d) {
                       using T = decltype(t);
                       softmax_bwd_kernel<T><<<grid, block, 0, stream>>>(
                           static_cast<const T*>(dprobs), static_cast<const T*>(scores), lengths,
                           static_cast<T*>(dscores), shape, rows, scale, causal, d);
                     });
}

}  // namespace lightseq
