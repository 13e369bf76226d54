// Attention softmax (scale + key-padding/causal mask + dropout), one warp
// per row; the row is re-read from L1 between passes (rows are short), so
// device memory sees one read and one write per element.
#include "lightseq/softmax.h"

#include <cmath>
#include <type_traits>

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

// Fast path for k_len % 8 == 0, k_len <= 1024 and vector-aligned buffers
// (the usual attention shapes): a group of LANES lanes holds a row in
// registers, CHUNKS 8-element vectors per lane (lane `sub` takes chunks sub,
// sub + LANES, ...), so a short row does not leave most of a warp idle and
// every element is read from memory once and exp'd once. A row's 8-element
// chunks are flat Philox groups (k_len % 8 == 0): the masks are the generic
// path's (and the CPU twin's) exactly.
template <int LANES>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int off = LANES / 2; off > 0; off >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off, LANES));
  return v;
}
template <int LANES>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int off = LANES / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off, LANES);
  return v;
}

struct FastRow {
  int64_t row;
  int sub;
  bool active;
};

template <int LANES>
__device__ __forceinline__ FastRow fast_row(int64_t rows) {
  const int lane = threadIdx.x;
  const int64_t warp = blockIdx.x * (int64_t)kWarpsPerBlock + threadIdx.y;
  const int64_t row = warp * (32 / LANES) + lane / LANES;
  return FastRow{row, lane % LANES, row < rows};
}

// p = softmax of the row's scaled visible scores, in registers (0 for keys
// >= visible and for fully masked rows).
template <typename T, int LANES, int CHUNKS>
__device__ __forceinline__ void fast_probs(const T* z, int64_t k_len, int64_t visible, int sub,
                                           bool active, float scale, float (&p)[CHUNKS][8]) {
  float mx = -INFINITY;
#pragma unroll
  for (int i = 0; i < CHUNKS; ++i) {
    const int64_t c0 = static_cast<int64_t>(sub + LANES * i) * 8;
    if (active && c0 < k_len) {
      detail::load_vec<T, 8>(z + c0, p[i]);
    } else {
#pragma unroll
      for (int k = 0; k < 8; ++k) p[i][k] = 0.f;
    }
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      p[i][k] = c0 + k < visible ? scale * p[i][k] : -INFINITY;
      mx = fmaxf(mx, p[i][k]);
    }
  }
  mx = group_max<LANES>(mx);
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < CHUNKS; ++i)
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      p[i][k] = p[i][k] == -INFINITY ? 0.f : __expf(p[i][k] - mx);
      sum += p[i][k];
    }
  sum = group_sum<LANES>(sum);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
  for (int i = 0; i < CHUNKS; ++i)
#pragma unroll
    for (int k = 0; k < 8; ++k) p[i][k] *= inv;
}

// Keep mask of chunk i of this lane (all kept at rate 0).
template <int LANES>
__device__ __forceinline__ Philox4 fast_bits(int64_t row, int64_t k_len, int sub, int i,
                                             const DropoutArgs& d) {
  Philox4 r{};
  if (d.threshold < 65536u)
    r = philox4x32_10(d.seed, static_cast<uint64_t>((row * k_len) / 8 + sub + LANES * i));
  return r;
}

__device__ __forceinline__ bool fast_keep(const Philox4& r, int k, const DropoutArgs& d) {
  return d.threshold >= 65536u || dropout_keep(r, k, d.threshold);
}

template <typename T, int LANES, int CHUNKS>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    softmax_fwd_fast(const T* __restrict__ scores, const int32_t* __restrict__ lengths,
                     T* __restrict__ probs, SoftmaxShape s, int64_t rows, float scale,
                     bool causal, DropoutArgs d) {
  const FastRow f = fast_row<LANES>(rows);
  const int64_t visible = f.active ? softmax_visible(s, lengths, causal, f.row) : 0;
  float p[CHUNKS][8];
  fast_probs<T, LANES, CHUNKS>(scores + f.row * s.k_len, s.k_len, visible, f.sub, f.active,
                               scale, p);
  if (!f.active) return;  // after the group's shuffles
#pragma unroll
  for (int i = 0; i < CHUNKS; ++i) {
    const int64_t c0 = static_cast<int64_t>(f.sub + LANES * i) * 8;
    if (c0 >= s.k_len) break;
    const Philox4 r = fast_bits<LANES>(f.row, s.k_len, f.sub, i, d);
#pragma unroll
    for (int k = 0; k < 8; ++k) p[i][k] = fast_keep(r, k, d) ? p[i][k] * d.scale : 0.f;
    detail::store_vec<T, 8>(probs + f.row * s.k_len + c0, p[i]);
  }
}

template <typename T, int LANES, int CHUNKS>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    softmax_bwd_fast(const T* __restrict__ dprobs, const T* __restrict__ scores,
                     const int32_t* __restrict__ lengths, T* __restrict__ dscores,
                     SoftmaxShape s, int64_t rows, float scale, bool causal, DropoutArgs d) {
  const FastRow f = fast_row<LANES>(rows);
  const int64_t visible = f.active ? softmax_visible(s, lengths, causal, f.row) : 0;
  float p[CHUNKS][8], g[CHUNKS][8];
  fast_probs<T, LANES, CHUNKS>(scores + f.row * s.k_len, s.k_len, visible, f.sub, f.active,
                               scale, p);
  // g = dropout(dprobs) (0 where dropped), dot = sum g p.
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < CHUNKS; ++i) {
    const int64_t c0 = static_cast<int64_t>(f.sub + LANES * i) * 8;
    if (f.active && c0 < s.k_len) {
      detail::load_vec<T, 8>(dprobs + f.row * s.k_len + c0, g[i]);
      const Philox4 r = fast_bits<LANES>(f.row, s.k_len, f.sub, i, d);
#pragma unroll
      for (int k = 0; k < 8; ++k) g[i][k] = fast_keep(r, k, d) ? g[i][k] * d.scale : 0.f;
    } else {
#pragma unroll
      for (int k = 0; k < 8; ++k) g[i][k] = 0.f;
    }
#pragma unroll
    for (int k = 0; k < 8; ++k) dot += g[i][k] * p[i][k];
  }
  dot = group_sum<LANES>(dot);
  if (!f.active) return;
#pragma unroll
  for (int i = 0; i < CHUNKS; ++i) {
    const int64_t c0 = static_cast<int64_t>(f.sub + LANES * i) * 8;
    if (c0 >= s.k_len) break;
#pragma unroll
    for (int k = 0; k < 8; ++k) g[i][k] = scale * p[i][k] * (g[i][k] - dot);
    detail::store_vec<T, 8>(dscores + f.row * s.k_len + c0, g[i]);
  }
}

// Calls launch(kernel-selector<LANES, CHUNKS>, grid) for the fast path's
// geometry of k_len, or returns false when the fast path does not apply.
template <typename F>
bool with_fast_geometry(int64_t k_len, int64_t rows, F&& f) {
  if (k_len % 8 != 0 || k_len > 1024) return false;
  const int64_t chunks = k_len / 8;
  auto grid = [&](int lanes) {
    const int64_t rows_per_block = kWarpsPerBlock * (32 / lanes);
    return static_cast<unsigned>((rows + rows_per_block - 1) / rows_per_block);
  };
  if (chunks <= 1) { f(std::integral_constant<int, 1>(), std::integral_constant<int, 1>(), grid(1)); }
  else if (chunks <= 2) { f(std::integral_constant<int, 2>(), std::integral_constant<int, 1>(), grid(2)); }
  else if (chunks <= 4) { f(std::integral_constant<int, 4>(), std::integral_constant<int, 1>(), grid(4)); }
  else if (chunks <= 8) { f(std::integral_constant<int, 8>(), std::integral_constant<int, 1>(), grid(8)); }
  else if (chunks <= 16) { f(std::integral_constant<int, 16>(), std::integral_constant<int, 1>(), grid(16)); }
  else if (chunks <= 32) { f(std::integral_constant<int, 32>(), std::integral_constant<int, 1>(), grid(32)); }
  else if (chunks <= 64) { f(std::integral_constant<int, 32>(), std::integral_constant<int, 2>(), grid(32)); }
  else { f(std::integral_constant<int, 32>(), std::integral_constant<int, 4>(), grid(32)); }
  return true;
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
                       constexpr int kAlign = 8 * sizeof(T);  // one 8-element vector
                       const bool aligned = detail::is_aligned(scores, kAlign) &&
                                            detail::is_aligned(probs, kAlign);
                       if (aligned && with_fast_geometry(shape.k_len, rows, [&](auto lanes, auto chunks,
                                                                              unsigned g) {
                             softmax_fwd_fast<T, decltype(lanes)::value, decltype(chunks)::value>
                                 <<<g, block, 0, stream>>>(static_cast<const T*>(scores), lengths,
                                                           static_cast<T*>(probs), shape, rows,
                                                           scale, causal, d);
                           }))
                         return;
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
                       constexpr int kAlign = 8 * sizeof(T);  // one 8-element vector
                       const bool aligned = detail::is_aligned(dprobs, kAlign) &&
                                            detail::is_aligned(scores, kAlign) &&
                                            detail::is_aligned(dscores, kAlign);
                       if (aligned && with_fast_geometry(shape.k_len, rows, [&](auto lanes, auto chunks,
                                                                              unsigned g) {
                             softmax_bwd_fast<T, decltype(lanes)::value, decltype(chunks)::value>
                                 <<<g, block, 0, stream>>>(static_cast<const T*>(dprobs),
                                                           static_cast<const T*>(scores), lengths,
                                                           static_cast<T*>(dscores), shape, rows,
                                                           scale, causal, d);
                           }))
                         return;
                       softmax_bwd_kernel<T><<<grid, block, 0, stream>>>(
                           static_cast<const T*>(dprobs), static_cast<const T*>(scores), lengths,
                           static_cast<T*>(dscores), shape, rows, scale, causal, d);
                     });
}

}  // namespace lightseq
