// Head split (+ bias) and merge: one thread per VEC consecutive elements of
// a head vector (16-byte accesses when head_dim and the pointers allow).
#include "lightseq/heads.h"

#include <algorithm>

#include "common.cuh"

namespace lightseq {
namespace {

using detail::load_vec;
using detail::store_vec;

// Offsets of element (s, b, h, l, k) in the [B, L, n*heads*d] and the
// [n, B, heads, L, d] layouts, from the index of the latter.
struct Index {
  int64_t merged, split;
};

__device__ __forceinline__ Index index_of(const HeadsShape& s, int64_t split_index) {
  int64_t t = split_index;
  const int64_t k = t % s.head_dim;
  t /= s.head_dim;
  const int64_t l = t % s.len;
  t /= s.len;
  const int64_t h = t % s.heads;
  t /= s.heads;
  const int64_t b = t % s.batch;
  const int64_t n = t / s.batch;
  const int64_t width = s.splits * s.heads * s.head_dim;
  return {(b * s.len + l) * width + (n * s.heads + h) * s.head_dim + k, split_index};
}

template <typename T, int VEC, bool SPLIT>
__global__ void heads_kernel(const T* __restrict__ x, const T* __restrict__ bias,
                             T* __restrict__ out, HeadsShape s, int64_t vecs) {
  for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < vecs;
       v += (int64_t)gridDim.x * blockDim.x) {
    const Index i = index_of(s, v * VEC);
    float a[VEC];
    if constexpr (SPLIT) {
      load_vec<T, VEC>(x + i.merged, a);
      if (bias) {
        float b[VEC];
        const int64_t width = s.splits * s.heads * s.head_dim;
        load_vec<T, VEC>(bias + i.merged % width, b);
#pragma unroll
        for (int k = 0; k < VEC; ++k) a[k] += b[k];
      }
      store_vec<T, VEC>(out + i.split, a);
    } else {
      load_vec<T, VEC>(x + i.split, a);
      store_vec<T, VEC>(out + i.merged, a);
    }
  }
}

template <bool SPLIT>
cudaError_t launch(DType dtype, const void* x, const void* bias, void* out, HeadsShape s,
                   cudaStream_t stream) {
  if (s.splits < 1 || s.batch < 0 || s.len < 0 || s.heads < 1 || s.head_dim < 1)
    return cudaErrorInvalidValue;
  const int64_t n = s.splits * s.batch * s.len * s.heads * s.head_dim;
  if (n == 0) return cudaSuccess;
  return detail::dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    constexpr int kVec = 16 / sizeof(T);
    const bool vec = s.head_dim % kVec == 0 && detail::is_aligned(x, 16) &&
                     detail::is_aligned(out, 16) && (!bias || detail::is_aligned(bias, 16));
    const int64_t vecs = vec ? n / kVec : n;
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>((vecs + 255) / 256, 1 << 20));
    if (vec)
      heads_kernel<T, kVec, SPLIT><<<grid, 256, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<T*>(out), s, vecs);
    else
      heads_kernel<T, 1, SPLIT><<<grid, 256, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<T*>(out), s, vecs);
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t split_heads(DType dtype, const void* x, const void* bias, void* out, HeadsShape s,
                        cudaStream_t stream) {
  return launch<true>(dtype, x, bias, out, s, stream);
}

cudaError_t merge_heads(DType dtype, const void* x, void* out, HeadsShape s,
                        cudaStream_t stream) {
  return launch<false>(dtype, x, nullptr, out, s, stream);
}

}  // namespace lightseq
