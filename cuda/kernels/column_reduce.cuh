// Deterministic column sums of float32 partials: out[c] = sum_p part[p][c],
// summed in a fixed order (32 row stripes per column, then a warp tree). The
// second stage of every fused backward that produces a parameter gradient
// (LayerNorm's dgamma/dbeta, the biases' dbias).
#pragma once

#include "common.cuh"

namespace lightseq {
namespace detail {

// part_b/out_b may be null (one output).
template <typename T>
__global__ void column_sum_kernel(const float* __restrict__ part_a,
                                  const float* __restrict__ part_b, int64_t parts,
                                  int64_t hidden, T* __restrict__ out_a,
                                  T* __restrict__ out_b) {
  __shared__ float sa[32][33], sb[32][33];
  const int64_t col = blockIdx.x * 32ll + threadIdx.x;
  float a = 0.f, b = 0.f;
  if (col < hidden) {
    for (int64_t p = threadIdx.y; p < parts; p += 32) {
      a += part_a[p * hidden + col];
      if (part_b) b += part_b[p * hidden + col];
    }
  }
  sa[threadIdx.y][threadIdx.x] = a;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  // Warp y reduces column y of this block: lane x reads stripe x.
  const float2 t = warp_allreduce_sum(
      make_float2(sa[threadIdx.x][threadIdx.y], sb[threadIdx.x][threadIdx.y]));
  const int64_t out = blockIdx.x * 32ll + threadIdx.y;
  if (threadIdx.x == 0 && out < hidden) {
    out_a[out] = from_float<T>(t.x);
    if (out_b) out_b[out] = from_float<T>(t.y);
  }
}

template <typename T>
cudaError_t column_sum(const float* part_a, const float* part_b, int64_t parts,
                       int64_t hidden, T* out_a, T* out_b, cudaStream_t stream) {
  if (hidden == 0) return cudaSuccess;
  column_sum_kernel<T><<<(hidden + 31) / 32, dim3(32, 32), 0, stream>>>(
      part_a, part_b, parts, hidden, out_a, out_b);
  return cudaGetLastError();
}

}  // namespace detail
}  // namespace lightseq
