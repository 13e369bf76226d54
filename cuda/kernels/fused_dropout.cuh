// Elementwise "bias + activation + dropout (+ residual)" over [rows, hidden],
// forward and backward (dx plus dbias partial column sums), templated on the
// activation. Shared by dropout.cu, bias_dropout_residual.cu and
// bias_act_dropout.cu, which instantiate the combinations their ops need.
//
// Vector path: VEC = 8 elements (one Philox call's worth; 16 bytes for 16-bit
// types, two 16-byte accesses for float32) when hidden % 8 == 0 and every
// pointer is aligned to 8 elements; a vector then never straddles rows and
// starts on a Philox call boundary. Otherwise a scalar path (one call per
// element).
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "column_reduce.cuh"
#include "common.cuh"
#include "lightseq/activation.h"
#include "lightseq/philox.h"

namespace lightseq {
namespace detail {

using lightseq::ActGelu;
using lightseq::ActGeluTanh;
using lightseq::ActIdentity;
using lightseq::ActRelu;

using lightseq::DropoutArgs;
using lightseq::make_dropout_args;

constexpr int kVec = kDropoutElemsPerCall;

// Keep flags of VEC consecutive elements starting at e0 (e0 % 8 == 0 when VEC == 8).
template <int VEC>
__device__ __forceinline__ void keep_flags(const DropoutArgs& d, int64_t e0, bool (&keep)[VEC]) {
  if constexpr (VEC == kVec) {
    const Philox4 r = philox4x32_10(d.seed, static_cast<uint64_t>(e0 / kVec));
#pragma unroll
    for (int k = 0; k < VEC; ++k) keep[k] = dropout_keep(r, k, d.threshold);
  } else {
#pragma unroll
    for (int k = 0; k < VEC; ++k)
      keep[k] = dropout_keep_element(d.seed, static_cast<uint64_t>(e0 + k), d.threshold);
  }
}

// y = [residual +] dropout(act(x [+ bias])); bias/residual may be null.
template <typename T, int VEC, class Act>
__global__ void fused_dropout_fwd_kernel(const T* __restrict__ x, const T* __restrict__ bias,
                                         const T* __restrict__ residual, T* __restrict__ y,
                                         int64_t rows, int64_t hidden, DropoutArgs d) {
  const int64_t vecs_per_row = hidden / VEC;
  const int64_t total = rows * vecs_per_row;
  for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < total;
       v += (int64_t)gridDim.x * blockDim.x) {
    const int64_t e0 = v * VEC;
    const int64_t c0 = (v % vecs_per_row) * VEC;
    float xv[VEC], bv[VEC], rv[VEC], o[VEC];
    bool keep[VEC];
    load_vec<T, VEC>(x + e0, xv);
    if (bias) load_vec<T, VEC>(bias + c0, bv);
    if (residual) load_vec<T, VEC>(residual + e0, rv);
    keep_flags<VEC>(d, e0, keep);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float a = Act::f(bias ? xv[k] + bv[k] : xv[k]);
      o[k] = keep[k] ? a * d.scale : 0.f;
      if (residual) o[k] += rv[k];
    }
    store_vec<T, VEC>(y + e0, o);
  }
}

// Backward tile: blockDim (32, 8); thread x owns VEC columns of a column
// block, threads y walk rows with stride 8 * gridDim.y. Writes dx and one
// float32 partial row of dbias per blockIdx.y (part may be null: no bias).
constexpr int kBwdRowsPerBlock = 8;
constexpr int kBwdUnroll = 4;

template <typename T, int VEC, class Act>
__global__ void fused_dropout_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                         const T* __restrict__ bias, T* __restrict__ dx,
                                         float* __restrict__ part, int64_t rows,
                                         int64_t hidden, DropoutArgs d) {
  __shared__ float red[kBwdRowsPerBlock][32 * VEC + 1];
  const int64_t c0 = (blockIdx.x * 32ll + threadIdx.x) * VEC;
  const bool active = c0 < hidden;
  float acc[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) acc[k] = 0.f;
  float bv[VEC];
  if (Act::kNeedsInput && bias && active) load_vec<T, VEC>(bias + c0, bv);
  // kBwdUnroll rows per step, all loads issued before any math, so each
  // thread keeps several 16-byte loads in flight.
  auto step = [&](int64_t r, int64_t stride, auto n_rows) {
    constexpr int N = decltype(n_rows)::value;
    float g[N][VEC], xv[N][Act::kNeedsInput ? VEC : 1];  // x only when act' needs it
#pragma unroll
    for (int u = 0; u < N; ++u) {
      load_vec<T, VEC>(dy + (r + u * stride) * hidden + c0, g[u]);
      if constexpr (Act::kNeedsInput) {
        load_vec<T, VEC>(x + (r + u * stride) * hidden + c0, xv[u]);
      } else {
        (void)xv;
      }
    }
#pragma unroll
    for (int u = 0; u < N; ++u) {
      const int64_t e0 = (r + u * stride) * hidden + c0;
      bool keep[VEC];
      float o[VEC];
      keep_flags<VEC>(d, e0, keep);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        float v = keep[k] ? g[u][k] * d.scale : 0.f;
        if constexpr (Act::kNeedsInput) v *= Act::df(bias ? xv[u][k] + bv[k] : xv[u][k]);
        o[k] = v;
        acc[k] += v;
      }
      if (dx) store_vec<T, VEC>(dx + e0, o);  // null: dbias only (uniform)
    }
  };
  if (active) {
    const int64_t stride = (int64_t)gridDim.y * kBwdRowsPerBlock;
    int64_t r = blockIdx.y * (int64_t)kBwdRowsPerBlock + threadIdx.y;
    for (; r + (kBwdUnroll - 1) * stride < rows; r += kBwdUnroll * stride)
      step(r, stride, std::integral_constant<int, kBwdUnroll>());
    for (; r < rows; r += stride) step(r, stride, std::integral_constant<int, 1>());
  }
  if (!part) return;  // uniform across the block
#pragma unroll
  for (int k = 0; k < VEC; ++k) red[threadIdx.y][threadIdx.x * VEC + k] = acc[k];
  __syncthreads();
  // 256 threads sum the 8 row-partials of the block's 32*VEC columns.
  for (int j = threadIdx.y * 32 + threadIdx.x; j < 32 * VEC; j += 32 * kBwdRowsPerBlock) {
    const int64_t col = blockIdx.x * 32ll * VEC + j;
    if (col >= hidden) continue;
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < kBwdRowsPerBlock; ++w) s += red[w][j];
    part[blockIdx.y * hidden + col] = s;
  }
}

// Row-blocks of the backward grid: ~2048 blocks of 256 threads in all (fills
// an H100 several times over), but no more than gives every thread one
// unrolled step of kBwdUnroll rows: with one row per thread (4096 x 1024 at
// 2048 blocks) the per-block bias load, shared-memory reduction and partial
// sums cost as much as the rows (1.6 TB/s measured; dbias-only 1.7 TB/s).
// A function of the shape only, so the workspace size is too.
inline int64_t bwd_row_blocks(int64_t rows, int64_t hidden) {
  const int64_t col_blocks = std::max<int64_t>(1, (hidden + 32 * kVec - 1) / (32 * kVec));
  const int64_t want = std::max<int64_t>(1, 2048 / col_blocks);
  constexpr int64_t kRowsPerStep = kBwdRowsPerBlock * kBwdUnroll;
  const int64_t have = (rows + kRowsPerStep - 1) / kRowsPerStep;
  return std::max<int64_t>(1, std::min<int64_t>({want, have, 1024}));
}

inline size_t bias_grad_workspace_bytes(int64_t rows, int64_t hidden) {
  if (rows <= 0 || hidden <= 0) return 0;
  return static_cast<size_t>(bwd_row_blocks(rows, hidden)) * hidden * sizeof(float);
}

template <typename T>
bool vector_ok(int64_t hidden, std::initializer_list<const void*> ptrs) {
  if (hidden % kVec != 0) return false;
  for (const void* p : ptrs)
    if (p && !is_aligned(p, kVec * sizeof(T))) return false;
  return true;
}

template <typename T, class Act>
cudaError_t fused_dropout_fwd(const T* x, const T* bias, const T* residual, T* y,
                              int64_t rows, int64_t hidden, DropoutArgs d,
                              cudaStream_t stream) {
  if (rows == 0 || hidden == 0) return cudaSuccess;
  const int threads = 256;
  auto grid_for = [&](int64_t vecs) {
    return static_cast<unsigned>(std::min<int64_t>((vecs + threads - 1) / threads, 1 << 20));
  };
  if (vector_ok<T>(hidden, {x, bias, residual, y})) {
    fused_dropout_fwd_kernel<T, kVec, Act><<<grid_for(rows * hidden / kVec), threads, 0, stream>>>(
        x, bias, residual, y, rows, hidden, d);
  } else {
    fused_dropout_fwd_kernel<T, 1, Act><<<grid_for(rows * hidden), threads, 0, stream>>>(
        x, bias, residual, y, rows, hidden, d);
  }
  return cudaGetLastError();
}

// dx = d(dropout(act(x + bias)))/dx * dy; dbias = column sums of dx when
// dbias is non-null (workspace: bias_grad_workspace_bytes). dx may be null
// when only dbias is wanted (the dx pass then reads and never writes).
template <typename T, class Act>
cudaError_t fused_dropout_bwd(const T* dy, const T* x, const T* bias, T* dx, T* dbias,
                              void* workspace, int64_t rows, int64_t hidden, DropoutArgs d,
                              cudaStream_t stream) {
  if (hidden == 0) return cudaSuccess;
  float* part = dbias ? static_cast<float*>(workspace) : nullptr;
  int64_t parts = 0;
  if (rows > 0) {
    const int64_t row_blocks = bwd_row_blocks(rows, hidden);
    parts = row_blocks;
    const dim3 block(32, kBwdRowsPerBlock);
    if (vector_ok<T>(hidden, {dy, x, bias, dx})) {
      const dim3 grid((hidden / kVec + 31) / 32, row_blocks);
      fused_dropout_bwd_kernel<T, kVec, Act><<<grid, block, 0, stream>>>(
          dy, x, bias, dx, part, rows, hidden, d);
    } else {
      const dim3 grid((hidden + 31) / 32, row_blocks);
      fused_dropout_bwd_kernel<T, 1, Act><<<grid, block, 0, stream>>>(
          dy, x, bias, dx, part, rows, hidden, d);
    }
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (!dbias) return cudaSuccess;
  return column_sum<T>(part, nullptr, parts, hidden, dbias, nullptr, stream);
}

}  // namespace detail
}  // namespace lightseq
