// Fused LayerNorm forward and backward.
//
// Each row is held in registers by the threads that own it: blockDim.x threads
// per row (a warp when the row is short, otherwise the whole block), each
// thread owning SLOTS vectors of VEC elements at stride blockDim.x (so every
// access is coalesced and, when the row is 16-byte aligned, 128 bits wide).
// Reading x once and keeping it in registers makes the forward one pass over
// memory; statistics use the two-pass (mean, then centred variance) formula in
// float32, so large offsets do not cancel.
//
// Backward writes dx per row and accumulates dgamma/dbeta per thread across the
// rows a block walks (grid-stride), then a second tiny kernel sums those
// per-block partials in a fixed order: deterministic, no atomics.
#include "lightseq/layer_norm.h"

#include <algorithm>
#include <type_traits>

#include "column_reduce.cuh"
#include "common.cuh"

namespace lightseq {
namespace {

using detail::from_float;
using detail::load_vec;
using detail::row_allreduce_sum;
using detail::store_vec;
using detail::to_float;
using detail::Vec;

constexpr int kMaxThreads = 1024;
// Rows of up to kWarpRowVecs vectors are owned by one warp, kWarpRows rows per
// block: no block barriers, several 16-byte loads in flight per thread.
constexpr int kWarpRows = 4;
constexpr int kWarpRowVecs = 128;
// Upper bound on the number of row-walking blocks in backward. Each block
// writes one row of float32 partials for dgamma and one for dbeta, so this
// caps that traffic (512 * hidden * 8 bytes) while leaving >= 8 rows per warp
// to amortise it at the sizes that matter (16k tokens).
#ifndef LIGHTSEQ_LN_MAX_BWD_BLOCKS  // compile-time tuning knob (benchmarks)
#define LIGHTSEQ_LN_MAX_BWD_BLOCKS 512
#endif
constexpr int kMaxBwdBlocks = LIGHTSEQ_LN_MAX_BWD_BLOCKS;

struct Plan {
  int vec;    // elements per access
  int tpr;    // threads per row (multiple of 32)
  int slots;  // vectors per thread
  int rpb;    // rows per block (kWarpRows when tpr == 32, else 1)
};

int pow2_at_least(int n) {
  int p = 1;
  while (p < n) p *= 2;
  return p;
}

Plan make_plan(int hidden, int elem_bytes, bool aligned) {
  Plan p;
  const int full_vec = 16 / elem_bytes;
  p.vec = (aligned && hidden % full_vec == 0) ? full_vec : 1;
  const int nv = hidden / p.vec;
  if (nv <= kWarpRowVecs) {
    p.tpr = 32;
    p.slots = pow2_at_least((nv + 31) / 32);
    p.rpb = kWarpRows;
  } else {
    // At least 8 elements per thread (ILP), at most 16 (registers), and at
    // most kMaxThreads threads per row.
    p.slots = std::max(pow2_at_least((nv + kMaxThreads - 1) / kMaxThreads),
                       std::max(1, 8 / p.vec));
    p.tpr = ((nv + p.slots - 1) / p.slots + 31) / 32 * 32;
    p.rpb = 1;
  }
  return p;
}

// Register budget per configuration: warp-row kernels run 128-thread blocks
// and may hold up to 32 elements per thread; block-row kernels up to 1024
// threads with at most 16 elements each.
template <int VEC, int SLOTS>
constexpr int launch_bound() {
  return VEC * SLOTS > 16 ? 32 * kWarpRows : kMaxThreads;
}

template <typename T, int VEC, int SLOTS>
__global__ void __launch_bounds__(launch_bound<VEC, SLOTS>())
ln_fwd_kernel(const T* __restrict__ x, const T* __restrict__ gamma,
              const T* __restrict__ beta, T* __restrict__ y,
              float* __restrict__ mean_out, float* __restrict__ rstd_out,
              int64_t rows, int hidden, float eps) {
  __shared__ float2 smem[32];
  const int64_t row = (int64_t)blockIdx.x * blockDim.y + threadIdx.y;
  if (row >= rows) return;  // uniform per row; rows sharing a block are warps
  const int nv = hidden / VEC;
  const T* xr = x + row * hidden;
  float v[SLOTS][VEC];
  float sum = 0.f;
#pragma unroll
  for (int s = 0; s < SLOTS; ++s) {
    const int i = s * blockDim.x + threadIdx.x;
    if (i < nv) {
      load_vec<T, VEC>(xr + i * VEC, v[s]);
#pragma unroll
      for (int k = 0; k < VEC; ++k) sum += v[s][k];
    }
  }
  const float inv_h = 1.f / hidden;
  const float mean = row_allreduce_sum(make_float2(sum, 0.f), smem).x * inv_h;
  float sq = 0.f;
#pragma unroll
  for (int s = 0; s < SLOTS; ++s) {
    const int i = s * blockDim.x + threadIdx.x;
    if (i < nv) {
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const float d = v[s][k] - mean;
        sq += d * d;
      }
    }
  }
  const float var = row_allreduce_sum(make_float2(sq, 0.f), smem).x * inv_h;
  const float rstd = rsqrtf(var + eps);
  T* yr = y + row * hidden;
#pragma unroll
  for (int s = 0; s < SLOTS; ++s) {
    const int i = s * blockDim.x + threadIdx.x;
    if (i < nv) {
      float g[VEC], b[VEC], o[VEC];
      load_vec<T, VEC>(gamma + i * VEC, g);
      load_vec<T, VEC>(beta + i * VEC, b);
#pragma unroll
      for (int k = 0; k < VEC; ++k) o[k] = (v[s][k] - mean) * rstd * g[k] + b[k];
      store_vec<T, VEC>(yr + i * VEC, o);
    }
  }
  if (threadIdx.x == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// dx = rstd * (dy*g - mean(dy*g) - xhat * mean(dy*g*xhat)), and one row of
// float32 partial sums of dy*xhat (dgamma) and dy (dbeta) per block.
//
// WARP_ROWS (a warp per row, several rows per block): the per-column sums live
// in shared memory, one region per warp, laid out [slot*VEC + k][lane] so each
// access is conflict-free; only the owning thread touches an address until the
// final barrier. Keeping them out of registers is what lets enough blocks be
// resident to saturate memory. Block rows keep them in registers (<= 16).
template <typename T, int VEC, int SLOTS, bool WARP_ROWS>
__global__ void __launch_bounds__(launch_bound<VEC, SLOTS>())
ln_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ x,
              const float* __restrict__ mean, const float* __restrict__ rstd,
              const T* __restrict__ gamma, T* dx, const T* dx_add,
              float* __restrict__ part_g, float* __restrict__ part_b,
              int64_t rows, int hidden) {
  __shared__ float2 red[32];
  extern __shared__ float acc_smem[];  // WARP_ROWS: [2][blockDim.y][SLOTS*VEC*32]
  constexpr int kRegion = SLOTS * VEC * 32;
  const int nv = hidden / VEC;
  const float inv_h = 1.f / hidden;
  float acc_g[WARP_ROWS ? 1 : SLOTS][VEC], acc_b[WARP_ROWS ? 1 : SLOTS][VEC];
  float* wg = acc_smem + threadIdx.y * kRegion;
  float* wb = acc_smem + (blockDim.y + threadIdx.y) * kRegion;
#pragma unroll
  for (int s = 0; s < SLOTS; ++s)
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      if constexpr (WARP_ROWS) {
        wg[(s * VEC + k) * 32 + threadIdx.x] = 0.f;
        wb[(s * VEC + k) * 32 + threadIdx.x] = 0.f;
      } else {
        acc_g[s][k] = acc_b[s][k] = 0.f;
      }
    }

  const int64_t stride = (int64_t)gridDim.x * blockDim.y;
  // The loop bound is uniform across a row's threads, so the barriers inside
  // row_allreduce_sum (block rows only) are reached by all of them.
  for (int64_t row = (int64_t)blockIdx.x * blockDim.y + threadIdx.y; row < rows;
       row += stride) {
    const float m = mean[row], r = rstd[row];
    const T* xr = x + row * hidden;
    const T* dyr = dy + row * hidden;
    // The row stays in registers in its storage type (half the registers of
    // float for 16-bit types) and is re-expanded after the reduction; gamma
    // is re-read from L1 rather than pinned in registers. Fewer registers,
    // more resident warps, more loads in flight.
    Vec<T, VEC> xv[SLOTS], dv[SLOTS];
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int i = s * blockDim.x + threadIdx.x;
      if (i < nv) {
        xv[s] = *reinterpret_cast<const Vec<T, VEC>*>(xr + i * VEC);
        dv[s] = *reinterpret_cast<const Vec<T, VEC>*>(dyr + i * VEC);
      }
    }
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int i = s * blockDim.x + threadIdx.x;
      if (i < nv) {
        float g[VEC];
        load_vec<T, VEC>(gamma + i * VEC, g);
#pragma unroll
        for (int k = 0; k < VEC; ++k) {
          const float d = to_float<T>(dv[s].v[k]);
          const float xh = (to_float<T>(xv[s].v[k]) - m) * r;
          // Rounded product (no FMA contraction) so both phases see the same
          // value: a constant row (e.g. H == 1) then gives dx == 0 exactly.
          const float gd = __fmul_rn(d, g[k]);
          if constexpr (WARP_ROWS) {
            wg[(s * VEC + k) * 32 + threadIdx.x] += d * xh;
            wb[(s * VEC + k) * 32 + threadIdx.x] += d;
          } else {
            acc_g[s][k] += d * xh;
            acc_b[s][k] += d;
          }
          s1 += gd;
          s2 += gd * xh;
        }
      }
    }
    const float2 tot = row_allreduce_sum(make_float2(s1, s2), red);
    const float c1 = tot.x * inv_h, c2 = tot.y * inv_h;
    T* dxr = dx + row * hidden;
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int i = s * blockDim.x + threadIdx.x;
      if (i < nv) {
        float g[VEC], o[VEC];
        load_vec<T, VEC>(gamma + i * VEC, g);
#pragma unroll
        for (int k = 0; k < VEC; ++k) {
          const float xh = (to_float<T>(xv[s].v[k]) - m) * r;
          o[k] = r * (__fmul_rn(to_float<T>(dv[s].v[k]), g[k]) - c1 - xh * c2);
        }
        if (dx_add) {  // uniform across the grid
          float a[VEC];
          load_vec<T, VEC>(dx_add + row * hidden + i * VEC, a);
#pragma unroll
          for (int k = 0; k < VEC; ++k) o[k] += a[k];
        }
        store_vec<T, VEC>(dxr + i * VEC, o);
      }
    }
  }

  float* pg = part_g + (int64_t)blockIdx.x * hidden;
  float* pb = part_b + (int64_t)blockIdx.x * hidden;
  if constexpr (WARP_ROWS) {
    // Sum the warps' regions in a fixed order; j walks the transposed layout.
    __syncthreads();
    const int nthreads = blockDim.x * blockDim.y;
    for (int j = threadIdx.y * blockDim.x + threadIdx.x; j < kRegion; j += nthreads) {
      const int lane = j % 32, k = (j / 32) % VEC, s = j / (32 * VEC);
      const int col = (s * 32 + lane) * VEC + k;
      if (col >= hidden) continue;
      float sg = 0.f, sb = 0.f;
      for (int w = 0; w < (int)blockDim.y; ++w) {
        sg += acc_smem[w * kRegion + j];
        sb += acc_smem[(blockDim.y + w) * kRegion + j];
      }
      pg[col] = sg;
      pb[col] = sb;
    }
  } else {
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const int i = s * blockDim.x + threadIdx.x;
      if (i < nv) {
#pragma unroll
        for (int k = 0; k < VEC; ++k) {
          pg[i * VEC + k] = acc_g[s][k];
          pb[i * VEC + k] = acc_b[s][k];
        }
      }
    }
  }
}

int64_t bwd_blocks(int64_t rows, const Plan& p) {
  const int64_t need = (rows + p.rpb - 1) / p.rpb;
  return std::max<int64_t>(1, std::min<int64_t>(need, kMaxBwdBlocks));
}

template <int N>
using Int = std::integral_constant<int, N>;

// Calls f(Int<VEC>, Int<SLOTS>) for the plan's (vec, slots); only combinations
// with at most 16 elements per thread are instantiated.
template <int FULL_VEC, typename F>
cudaError_t dispatch(const Plan& p, F&& f) {
  if (p.vec == FULL_VEC) {
    switch (p.slots) {
      case 1: return f(Int<FULL_VEC>(), Int<1>());
      case 2: return f(Int<FULL_VEC>(), Int<2>());
      case 4: return f(Int<FULL_VEC>(), Int<4>());
    }
    return cudaErrorInvalidValue;
  }
  switch (p.slots) {
    case 1: return f(Int<1>(), Int<1>());
    case 2: return f(Int<1>(), Int<2>());
    case 4: return f(Int<1>(), Int<4>());
    case 8: return f(Int<1>(), Int<8>());
    case 16: return f(Int<1>(), Int<16>());
  }
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t fwd_impl(const T* x, const T* gamma, const T* beta, T* y,
                     float* mean, float* rstd, int64_t rows, int hidden,
                     float eps, cudaStream_t stream) {
  const bool aligned = detail::is_aligned(x, 16) && detail::is_aligned(y, 16) &&
                       detail::is_aligned(gamma, 16) && detail::is_aligned(beta, 16);
  const Plan p = make_plan(hidden, sizeof(T), aligned);
  const dim3 block(p.tpr, p.rpb);
  const int64_t grid = (rows + p.rpb - 1) / p.rpb;
  return dispatch<16 / sizeof(T)>(p, [&](auto vec, auto slots) {
    ln_fwd_kernel<T, decltype(vec)::value, decltype(slots)::value><<<grid, block, 0, stream>>>(
        x, gamma, beta, y, mean, rstd, rows, hidden, eps);
    return cudaGetLastError();
  });
}

template <typename T>
cudaError_t bwd_impl(const T* dy, const T* x, const float* mean,
                     const float* rstd, const T* gamma, T* dx, const T* dx_add,
                     T* dgamma, T* dbeta, void* workspace, int64_t rows, int hidden,
                     cudaStream_t stream) {
  const bool aligned = detail::is_aligned(x, 16) && detail::is_aligned(dy, 16) &&
                       detail::is_aligned(dx, 16) && detail::is_aligned(gamma, 16) &&
                       detail::is_aligned(dx_add, 16);
  const Plan p = make_plan(hidden, sizeof(T), aligned);
  float* part_g = static_cast<float*>(workspace);
  int64_t parts = 0;
  if (rows > 0) {
    const int64_t grid = bwd_blocks(rows, p);
    parts = grid;
    float* part_b = part_g + parts * hidden;
    const dim3 block(p.tpr, p.rpb);
    const size_t smem = p.rpb > 1 ? 2 * sizeof(float) * p.rpb * p.slots * p.vec * 32 : 0;
    cudaError_t err = dispatch<16 / sizeof(T)>(p, [&](auto vec, auto slots) {
      constexpr int V = decltype(vec)::value, S = decltype(slots)::value;
      if (p.rpb > 1) {
        if constexpr (S <= kWarpRowVecs / 32) {
          ln_bwd_kernel<T, V, S, true><<<grid, block, smem, stream>>>(
              dy, x, mean, rstd, gamma, dx, dx_add, part_g, part_b, rows, hidden);
          return cudaGetLastError();
        }
        return cudaErrorInvalidValue;
      }
      ln_bwd_kernel<T, V, S, false><<<grid, block, 0, stream>>>(
          dy, x, mean, rstd, gamma, dx, dx_add, part_g, part_b, rows, hidden);
      return cudaGetLastError();
    });
    if (err != cudaSuccess) return err;
  }
  const float* part_b = part_g + parts * hidden;
  return detail::column_sum<T>(part_g, part_b, parts, hidden, dgamma, dbeta, stream);
}

bool valid(int64_t rows, int hidden) {
  return rows >= 0 && hidden > 0 && hidden <= kLayerNormMaxHidden &&
         rows <= INT64_MAX / hidden;
}

}  // namespace

cudaError_t layer_norm_fwd(DType dtype, const void* x, const void* gamma,
                           const void* beta, void* y, float* mean, float* rstd,
                           int64_t rows, int hidden, float epsilon,
                           cudaStream_t stream) {
  if (!valid(rows, hidden) || !(epsilon > 0.f)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return detail::dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return fwd_impl(static_cast<const T*>(x), static_cast<const T*>(gamma),
                    static_cast<const T*>(beta), static_cast<T*>(y), mean, rstd, rows, hidden,
                    epsilon, stream);
  });
}

size_t layer_norm_bwd_workspace_bytes(DType dtype, int64_t rows, int hidden) {
  if (!valid(rows, hidden) || rows == 0) return 0;
  // Rows per block depends on whether the pointers turn out aligned; size for
  // the smaller of the two (more blocks, more partial rows).
  const int es = dtype_size(dtype);
  const int rpb = std::min(make_plan(hidden, es, true).rpb,
                           make_plan(hidden, es, false).rpb);
  const int64_t parts = std::min<int64_t>((rows + rpb - 1) / rpb, kMaxBwdBlocks);
  return 2 * static_cast<size_t>(parts) * hidden * sizeof(float);
}

cudaError_t layer_norm_bwd(DType dtype, const void* dy, const void* x,
                           const float* mean, const float* rstd,
                           const void* gamma, void* dx, const void* dx_add, void* dgamma,
                           void* dbeta, void* workspace, int64_t rows,
                           int hidden, cudaStream_t stream) {
  if (!valid(rows, hidden)) return cudaErrorInvalidValue;
  return detail::dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return bwd_impl(static_cast<const T*>(dy), static_cast<const T*>(x), mean, rstd,
                    static_cast<const T*>(gamma), static_cast<T*>(dx),
                    static_cast<const T*>(dx_add), static_cast<T*>(dgamma),
                    static_cast<T*>(dbeta), workspace, rows, hidden, stream);
  });
}

}  // namespace lightseq
