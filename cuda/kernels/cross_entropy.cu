// Label-smoothed cross-entropy: one block per row, one streaming pass over
// the logits in each direction (online max / sum-exp forward), 16-byte loads
// when the row is aligned.
#include "lightseq/cross_entropy.h"

#include <cmath>

#include "common.cuh"

namespace lightseq {
namespace {

using detail::from_float;
using detail::load_vec;
using detail::store_vec;
using detail::to_float;

constexpr int kThreads = 512;

// Online softmax normaliser: the running max m and s = sum of exp(z - m)
// over all elements *but one* that equals m (whose term is exactly 1), so
// lse = m + log1p(s). Keeping the 1 out of the sum keeps small losses (the
// confident tokens of a trained model) accurate: m + log(1 + s) rounds 1 + s
// first and loses s's low digits.
struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.m < b.m) {
    const MaxSum t = a;
    a = b;
    b = t;
  }
  if (b.m == -INFINITY) return a;  // includes the empty (-inf, 0) state
  return {a.m, a.s + (1.f + b.s) * __expf(b.m - a.m)};
}

__device__ __forceinline__ MaxSum add(MaxSum a, float z) {
  if (z > a.m) return {z, a.m == -INFINITY ? 0.f : (1.f + a.s) * __expf(a.m - z)};
  return {a.m, a.s + __expf(z - a.m)};
}

// Block-wide reduction of (max-sum, sum z); every thread gets the result.
__device__ __forceinline__ void block_reduce(MaxSum& ms, float& sz) {
  __shared__ MaxSum sm[32];
  __shared__ float ss[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    MaxSum o{__shfl_xor_sync(0xffffffffu, ms.m, off), __shfl_xor_sync(0xffffffffu, ms.s, off)};
    ms = merge(ms, o);
    sz += __shfl_xor_sync(0xffffffffu, sz, off);
  }
  if (lane == 0) {
    sm[warp] = ms;
    ss[warp] = sz;
  }
  __syncthreads();
  const int nw = blockDim.x >> 5;
  ms = lane < nw ? sm[lane] : MaxSum{-INFINITY, 0.f};
  sz = lane < nw ? ss[lane] : 0.f;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    MaxSum o{__shfl_xor_sync(0xffffffffu, ms.m, off), __shfl_xor_sync(0xffffffffu, ms.s, off)};
    ms = merge(ms, o);
    sz += __shfl_xor_sync(0xffffffffu, sz, off);
  }
}

template <typename I>
__device__ __forceinline__ int64_t target_of(const void* targets, int64_t row) {
  return static_cast<int64_t>(static_cast<const I*>(targets)[row]);
}

struct Smoothing {
  float conf, low, eps;  // q_target = 1 - eps, q_other
};

__host__ Smoothing make_smoothing(float eps, int64_t vocab) {
  const float low = vocab > 1 ? static_cast<float>(eps / static_cast<double>(vocab - 1)) : 0.f;
  return {1.f - eps, low, eps};
}

template <typename T, int VEC, typename I>
__global__ void __launch_bounds__(kThreads)
ce_fwd_kernel(const T* __restrict__ logits, const void* __restrict__ targets,
              float* __restrict__ loss, float* __restrict__ nll, float* __restrict__ lse_out,
              int64_t vocab, Smoothing q, int64_t padding_id) {
  const int64_t row = blockIdx.x;
  const int64_t t = target_of<I>(targets, row);
  if (t == padding_id) {  // uniform per block
    if (threadIdx.x == 0) loss[row] = nll[row] = lse_out[row] = 0.f;
    return;
  }
  const T* z = logits + row * vocab;
  MaxSum ms{-INFINITY, 0.f};
  float sz = 0.f;
  const int64_t nv = vocab / VEC;
  for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    float v[VEC];
    load_vec<T, VEC>(z + i * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      ms = add(ms, v[k]);
      sz += v[k];
    }
  }
  block_reduce(ms, sz);
  if (threadIdx.x == 0) {
    const float l1p = log1pf(ms.s);  // lse = m + l1p
    if (t < 0 || t >= vocab) {  // never dereferenced: the row becomes NaN
      loss[row] = nll[row] = lse_out[row] = NAN;
      return;
    }
    const float gap = ms.m - to_float<T>(z[t]);  // >= 0, exact when z_t is the max
    // nll = lse - z_t; loss = -sum_j q_j (z_j - lse), with sum_j q_j = 1:
    //   = l1p + (conf - low) (m - z_t) + low (V m - sum_j z_j).
    // Written around (m - z_t) so no large terms cancel for confident tokens.
    nll[row] = gap + l1p;
    loss[row] = l1p + (q.conf - q.low) * gap + q.low * (static_cast<float>(vocab) * ms.m - sz);
    lse_out[row] = ms.m + l1p;
  }
}

template <typename T, int VEC, typename I>
__global__ void __launch_bounds__(kThreads)
ce_bwd_kernel(const float* __restrict__ dloss, const float* __restrict__ dnll,
              const T* __restrict__ logits, const void* __restrict__ targets,
              const float* __restrict__ lse, const float* __restrict__ nll,
              T* __restrict__ dlogits, int64_t vocab, Smoothing q, int64_t padding_id) {
  const int64_t row = blockIdx.x;
  const int64_t t = target_of<I>(targets, row);
  const T* z = logits + row * vocab;
  T* dz = dlogits + row * vocab;
  const int64_t nv = vocab / VEC;
  const bool pad = t == padding_id;
  const bool bad = !pad && (t < 0 || t >= vocab);
  const float gl = pad ? 0.f : dloss[row], gn = pad ? 0.f : dnll[row];
  const float g1 = gl + gn, base = -gl * q.low, l = pad ? 0.f : lse[row];
  // Target entry: gl (p_t - conf) + gn (p_t - 1), p_t - 1 = expm1(-nll).
  const float pm1 = pad ? 0.f : expm1f(-nll[row]);
  const float at_t = gl * (pm1 + q.eps) + gn * pm1;
  for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    float v[VEC], o[VEC];
    load_vec<T, VEC>(z + i * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const int64_t j = i * VEC + k;
      float d = pad ? 0.f : (j == t ? at_t : g1 * __expf(v[k] - l) + base);
      o[k] = bad ? NAN : d;
    }
    store_vec<T, VEC>(dz + i * VEC, o);
  }
}

// {sum loss, sum nll, count of non-padding rows} in one block, fixed order.
template <typename I>
__global__ void ce_sums_kernel(const float* __restrict__ loss, const float* __restrict__ nll,
                               const void* __restrict__ targets, int64_t rows,
                               int64_t padding_id, float* __restrict__ sums) {
  __shared__ float s[3][kThreads];
  float a = 0.f, b = 0.f, c = 0.f;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    a += loss[r];
    b += nll[r];
    c += target_of<I>(targets, r) != padding_id ? 1.f : 0.f;
  }
  s[0][threadIdx.x] = a;
  s[1][threadIdx.x] = b;
  s[2][threadIdx.x] = c;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w)
      for (int k = 0; k < 3; ++k) s[k][threadIdx.x] += s[k][threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int k = 0; k < 3; ++k) sums[k] = s[k][0];
}

template <typename T>
bool aligned_rows(const void* p, int64_t vocab) {
  constexpr int kVec = 16 / sizeof(T);
  return vocab % kVec == 0 && detail::is_aligned(p, 16);
}

template <typename T, typename I>
cudaError_t fwd_impl(const void* logits, const void* targets, float* loss, float* nll, float* lse,
                     float* sums, int64_t rows, int64_t vocab, Smoothing q, int64_t pad,
                     cudaStream_t stream) {
  const T* z = static_cast<const T*>(logits);
  if (rows > 0) {
    if (aligned_rows<T>(z, vocab))
      ce_fwd_kernel<T, 16 / sizeof(T), I><<<rows, kThreads, 0, stream>>>(z, targets, loss, nll,
                                                                        lse, vocab, q, pad);
    else
      ce_fwd_kernel<T, 1, I><<<rows, kThreads, 0, stream>>>(z, targets, loss, nll, lse, vocab, q,
                                                           pad);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  ce_sums_kernel<I><<<1, kThreads, 0, stream>>>(loss, nll, targets, rows, pad, sums);
  return cudaGetLastError();
}

template <typename T, typename I>
cudaError_t bwd_impl(const float* dloss, const float* dnll, const void* logits,
                     const void* targets, const float* lse, const float* nll, void* dlogits,
                     int64_t rows,
                     int64_t vocab, Smoothing q, int64_t pad, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const T* z = static_cast<const T*>(logits);
  T* dz = static_cast<T*>(dlogits);
  if (aligned_rows<T>(z, vocab) && detail::is_aligned(dz, 16))
    ce_bwd_kernel<T, 16 / sizeof(T), I><<<rows, kThreads, 0, stream>>>(
        dloss, dnll, z, targets, lse, nll, dz, vocab, q, pad);
  else
    ce_bwd_kernel<T, 1, I><<<rows, kThreads, 0, stream>>>(dloss, dnll, z, targets, lse, nll, dz,
                                                         vocab, q, pad);
  return cudaGetLastError();
}

// Calls f(T{}, I{}) for the runtime (dtype, index type).
template <typename F>
cudaError_t dispatch(DType dtype, bool i64, F&& f) {
  auto by_index = [&](auto t) -> cudaError_t {
    return i64 ? f(t, int64_t()) : f(t, int32_t());
  };
  return detail::dispatch_dtype(dtype, by_index);
}

bool valid(int64_t rows, int64_t vocab, float eps) {
  return rows >= 0 && rows < (1ll << 31) && vocab >= 1 && eps >= 0.f && eps < 1.f &&
         (eps == 0.f || vocab >= 2);
}

}  // namespace

cudaError_t cross_entropy_fwd(DType dtype, const void* logits, const void* targets,
                              bool targets_int64, float* loss, float* nll, float* lse,
                              float* sums, int64_t rows, int64_t vocab, float epsilon,
                              int64_t padding_id, cudaStream_t stream) {
  if (!valid(rows, vocab, epsilon)) return cudaErrorInvalidValue;
  const Smoothing q = make_smoothing(epsilon, vocab);
  return dispatch(dtype, targets_int64, [&](auto t, auto i) {
    return fwd_impl<decltype(t), decltype(i)>(logits, targets, loss, nll, lse, sums, rows, vocab,
                                              q, padding_id, stream);
  });
}

cudaError_t cross_entropy_bwd(DType dtype, const float* dloss, const float* dnll,
                              const void* logits, const void* targets, bool targets_int64,
                              const float* lse, const float* nll, void* dlogits, int64_t rows,
                              int64_t vocab, float epsilon, int64_t padding_id,
                              cudaStream_t stream) {
  if (!valid(rows, vocab, epsilon)) return cudaErrorInvalidValue;
  const Smoothing q = make_smoothing(epsilon, vocab);
  return dispatch(dtype, targets_int64, [&](auto t, auto i) {
    return bwd_impl<decltype(t), decltype(i)>(dloss, dnll, logits, targets, lse, nll, dlogits,
                                              rows, vocab, q, padding_id, stream);
  });
}

}  // namespace lightseq
