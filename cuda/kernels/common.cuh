// Device helpers shared by the fused kernels: element conversion, 128-bit
// vector access, warp/row reductions. Internal to cuda/; not a public header.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lightseq/dtype.h"

namespace lightseq {
namespace detail {

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// VEC elements moved as aligned accesses (one 16-byte access when
// VEC*sizeof(T) == 16; the compiler splits larger ones into 16-byte pieces).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[VEC]) {
  const Vec<T, VEC> r = *reinterpret_cast<const Vec<T, VEC>*>(p);
#pragma unroll
  for (int k = 0; k < VEC; ++k) out[k] = to_float<T>(r.v[k]);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[VEC]) {
  Vec<T, VEC> r;
#pragma unroll
  for (int k = 0; k < VEC; ++k) r.v[k] = from_float<T>(in[k]);
  *reinterpret_cast<Vec<T, VEC>*>(p) = r;
}

__device__ __forceinline__ float warp_allreduce_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float2 warp_allreduce_sum(float2 v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    v.x += __shfl_xor_sync(0xffffffffu, v.x, off);
    v.y += __shfl_xor_sync(0xffffffffu, v.y, off);
  }
  return v;
}

// Sum over the threads of one row: blockDim.x threads (a multiple of 32) form
// a row. With blockDim.x == 32 each warp is its own row (no barrier); with more,
// the whole block is one row (blockDim.y == 1) and `smem` holds 32 float2.
// Every thread gets the total, summed in a fixed order (deterministic).
__device__ __forceinline__ float2 row_allreduce_sum(float2 v, float2* smem) {
  v = warp_allreduce_sum(v);
  if (blockDim.x == 32) return v;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // smem may still be read by a previous reduction
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float2 t = lane < (int)(blockDim.x >> 5) ? smem[lane] : make_float2(0.f, 0.f);
  return warp_allreduce_sum(t);
}

// Calls f(T()) with T the element type of `dtype` (float, __half or
// __nv_bfloat16): the one place a DType becomes a C++ type.
template <typename F>
cudaError_t dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32: return f(float());
    case DType::kFloat16: return f(__half());
    case DType::kBFloat16: return f(__nv_bfloat16());
  }
  return cudaErrorInvalidValue;
}

inline bool is_aligned(const void* p, int bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

}  // namespace detail
}  // namespace lightseq
