// Multi-tensor Adam / AdamW and the non-finite check over a list of grads.
// Each launch takes up to kMaxTensors tensors in a by-value parameter struct;
// its grid has one block per chunk of kChunk elements over all of them, and a
// block finds its tensor by binary search over the cumulative chunk counts
// (hardware block scheduling balances tensors of any size).
#include "lightseq/adam.h"

#include <cmath>
#include <type_traits>

#include "common.cuh"

namespace lightseq {
namespace {

using detail::to_float;

constexpr int kThreads = 256;
constexpr int kVec = 4;          // elements per thread per step (16 B of fp32)
constexpr int kChunk = 16384;    // elements per block
constexpr int kMaxChunks = 1 << 30;  // per launch (grid.x limit is 2^31 - 1)

// DEPTH pointers per tensor. Adam: param, m, v, grad (+ model copy).
// found-inf: grad only. Sizes keep every kernel's parameters under 4 KB.
template <int DEPTH>
struct TensorList {
  static constexpr int kMaxTensors = DEPTH == 1 ? 160 : DEPTH == 4 ? 80 : 68;
  void* ptr[DEPTH][kMaxTensors];
  int64_t numel[kMaxTensors];
  int chunk_end[kMaxTensors];  // cumulative chunk count through tensor i
  int count;
};
static_assert(sizeof(TensorList<1>) + 64 <= 4000, "kernel parameters over 4 KB");
static_assert(sizeof(TensorList<4>) + sizeof(AdamScalars) + 16 <= 4000,
              "kernel parameters over 4 KB");
static_assert(sizeof(TensorList<5>) + sizeof(AdamScalars) + 16 <= 4000,
              "kernel parameters over 4 KB");

__device__ __forceinline__ bool aligned(const void* p, int bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

// The block's tensor t and the element range [start, start + n) of its chunk.
template <int DEPTH>
__device__ __forceinline__ void locate(const TensorList<DEPTH>& l, int& t, int64_t& start,
                                       int& n) {
  const int c = blockIdx.x;
  int lo = 0, hi = l.count - 1;  // first t with chunk_end[t] > c
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (l.chunk_end[mid] > c) hi = mid;
    else lo = mid + 1;
  }
  t = lo;
  const int first = t ? l.chunk_end[t - 1] : 0;
  start = static_cast<int64_t>(c - first) * kChunk;
  const int64_t left = l.numel[t] - start;
  n = left < kChunk ? static_cast<int>(left) : kChunk;
}

// The order of ops of lightseq/adam_step.h, each op rounded (no contraction).
__device__ __forceinline__ void adam_element(float& p, float& m, float& v, float g,
                                             const AdamScalars& s) {
  if (s.grad_scale != 1.f) g = __fdiv_rn(g, s.grad_scale);  // g / 1 == g: skip the division
  if (s.weight_decay != 0.f) {
    if (s.adamw) p = __fadd_rn(p, -__fmul_rn(s.lr_wd, p));
    else g = __fadd_rn(g, __fmul_rn(s.weight_decay, p));
  }
  m = __fadd_rn(__fmul_rn(s.beta1, m), __fmul_rn(s.one_minus_beta1, g));
  v = __fadd_rn(__fmul_rn(s.beta2, v), __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
  const float d = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bc2_sqrt), s.eps);
  p = __fadd_rn(p, -__fmul_rn(s.step_size, __fdiv_rn(m, d)));
}

template <typename G, typename C, int DEPTH>
__global__ void __launch_bounds__(kThreads)
    lightseq_adam_kernel(TensorList<DEPTH> l, AdamScalars s, const float* found_inf) {
  if (found_inf != nullptr && *found_inf != 0.f) return;
  int t, n;
  int64_t start;
  locate(l, t, start, n);
  float* p = static_cast<float*>(l.ptr[0][t]) + start;
  float* m = static_cast<float*>(l.ptr[1][t]) + start;
  float* v = static_cast<float*>(l.ptr[2][t]) + start;
  const G* g = static_cast<const G*>(l.ptr[3][t]) + start;
  C* copy = nullptr;
  if constexpr (DEPTH == 5) copy = static_cast<C*>(l.ptr[4][t]);  // may be null per tensor
  if (copy) copy += start;
  // chunk starts are multiples of kVec, so aligned tensors give aligned chunks
  const bool vec = aligned(p, 16) && aligned(m, 16) && aligned(v, 16) &&
                   aligned(g, kVec * sizeof(G)) && (!copy || aligned(copy, kVec * sizeof(C)));
  int done = 0;
  if (vec) {
    const int nv = n / kVec;
    for (int i = threadIdx.x; i < nv; i += kThreads) {
      const int o = i * kVec;
      float rp[kVec], rm[kVec], rv[kVec], rg[kVec];
      detail::load_vec<float, kVec>(p + o, rp);
      detail::load_vec<float, kVec>(m + o, rm);
      detail::load_vec<float, kVec>(v + o, rv);
      detail::load_vec<G, kVec>(g + o, rg);
#pragma unroll
      for (int k = 0; k < kVec; ++k) adam_element(rp[k], rm[k], rv[k], rg[k], s);
      detail::store_vec<float, kVec>(p + o, rp);
      detail::store_vec<float, kVec>(m + o, rm);
      detail::store_vec<float, kVec>(v + o, rv);
      if (copy) detail::store_vec<C, kVec>(copy + o, rp);
    }
    done = nv * kVec;
  }
  for (int i = done + threadIdx.x; i < n; i += kThreads) {
    float rp = p[i], rm = m[i], rv = v[i];
    adam_element(rp, rm, rv, to_float<G>(g[i]), s);
    p[i] = rp;
    m[i] = rm;
    v[i] = rv;
    if (copy) copy[i] = detail::from_float<C>(rp);
  }
}

template <typename G>
__global__ void __launch_bounds__(kThreads)
    lightseq_found_inf_kernel(TensorList<1> l, float* found_inf) {
  int t, n;
  int64_t start;
  locate(l, t, start, n);
  const G* g = static_cast<const G*>(l.ptr[0][t]) + start;
  bool bad = false;
  int done = 0;
  if (aligned(g, kVec * sizeof(G))) {
    const int nv = n / kVec;
    for (int i = threadIdx.x; i < nv; i += kThreads) {
      float r[kVec];
      detail::load_vec<G, kVec>(g + i * kVec, r);
#pragma unroll
      for (int k = 0; k < kVec; ++k) bad |= !isfinite(r[k]);
    }
    done = nv * kVec;
  }
  for (int i = done + threadIdx.x; i < n; i += kThreads) bad |= !isfinite(to_float<G>(g[i]));
  if (__syncthreads_or(bad) && threadIdx.x == 0) *found_inf = 1.f;  // same value from any block
}

// Fills `l` with tensors [begin, end) of the caller's list (skipping empty
// ones) until it is full; launch(l, chunks) runs it. Returns the first error.
template <int DEPTH, typename Get, typename Launch>
cudaError_t for_each_launch(int count, Get&& get, Launch&& launch) {
  TensorList<DEPTH> l;
  l.count = 0;
  int chunks = 0;
  for (int i = 0; i <= count; ++i) {
    int64_t numel = 0;
    void* ptrs[DEPTH] = {};
    if (i < count) {
      get(i, ptrs, numel);
      if (numel == 0) continue;
    }
    const int64_t need = (numel + kChunk - 1) / kChunk;
    const bool flush = i == count || l.count == TensorList<DEPTH>::kMaxTensors ||
                       chunks + need > kMaxChunks;
    if (flush && l.count > 0) {
      const cudaError_t err = launch(l, chunks);
      if (err != cudaSuccess) return err;
      l.count = 0;
      chunks = 0;
    }
    if (i == count) break;
    if (need > kMaxChunks) return cudaErrorInvalidValue;
    for (int d = 0; d < DEPTH; ++d) l.ptr[d][l.count] = ptrs[d];
    l.numel[l.count] = numel;
    chunks += static_cast<int>(need);
    l.chunk_end[l.count] = chunks;
    ++l.count;
  }
  return cudaSuccess;
}

template <typename G, typename C, int DEPTH>
cudaError_t adam_impl(const AdamTensor* ts, int count, const AdamScalars& s,
                      const float* found_inf, cudaStream_t stream) {
  auto get = [&](int i, void* (&p)[DEPTH], int64_t& numel) {
    p[0] = ts[i].param;
    p[1] = ts[i].m;
    p[2] = ts[i].v;
    p[3] = const_cast<void*>(ts[i].grad);
    if constexpr (DEPTH == 5) p[4] = ts[i].model_copy;
    numel = ts[i].numel;
  };
  auto launch = [&](const TensorList<DEPTH>& l, int chunks) {
    lightseq_adam_kernel<G, C, DEPTH><<<chunks, kThreads, 0, stream>>>(l, s, found_inf);
    return cudaGetLastError();
  };
  return for_each_launch<DEPTH>(count, get, launch);
}

}  // namespace

cudaError_t multi_tensor_adam(const AdamTensor* tensors, int count, DType grad_dtype,
                              DType copy_dtype, const AdamHyper& hyper, const float* found_inf,
                              cudaStream_t stream) {
  if (count < 0 || (count > 0 && tensors == nullptr) || !adam_hyper_valid(hyper))
    return cudaErrorInvalidValue;
  bool any_copy = false;
  for (int i = 0; i < count; ++i) {
    const AdamTensor& t = tensors[i];
    if (t.numel < 0) return cudaErrorInvalidValue;
    if (t.numel > 0 && (!t.param || !t.m || !t.v || !t.grad)) return cudaErrorInvalidValue;
    any_copy |= t.numel > 0 && t.model_copy != nullptr;
  }
  if (any_copy && copy_dtype == DType::kFloat32) return cudaErrorInvalidValue;
  const AdamScalars s = adam_scalars(hyper);
  return detail::dispatch_dtype(grad_dtype, [&](auto g) -> cudaError_t {
    using G = decltype(g);
    if (!any_copy) return adam_impl<G, __half, 4>(tensors, count, s, found_inf, stream);
    return detail::dispatch_dtype(copy_dtype, [&](auto c) -> cudaError_t {
      using C = decltype(c);
      if constexpr (std::is_same<C, float>::value) {
        return cudaErrorInvalidValue;  // rejected above; no fp32 copy kernel is built
      } else {
        return adam_impl<G, C, 5>(tensors, count, s, found_inf, stream);
      }
    });
  });
}

cudaError_t multi_tensor_found_inf(const void* const* grads, const int64_t* numel, int count,
                                   DType dtype, float* found_inf, bool reset,
                                   cudaStream_t stream) {
  if (count < 0 || found_inf == nullptr || (count > 0 && (grads == nullptr || numel == nullptr)))
    return cudaErrorInvalidValue;
  for (int i = 0; i < count; ++i)
    if (numel[i] < 0 || (numel[i] > 0 && grads[i] == nullptr)) return cudaErrorInvalidValue;
  if (reset) {
    const cudaError_t err = cudaMemsetAsync(found_inf, 0, sizeof(float), stream);
    if (err != cudaSuccess) return err;
  }
  return detail::dispatch_dtype(dtype, [&](auto g) -> cudaError_t {
    using G = decltype(g);
    auto get = [&](int i, void* (&p)[1], int64_t& n) {
      p[0] = const_cast<void*>(grads[i]);
      n = numel[i];
    };
    auto launch = [&](const TensorList<1>& l, int chunks) {
      lightseq_found_inf_kernel<G><<<chunks, kThreads, 0, stream>>>(l, found_inf);
      return cudaGetLastError();
    };
    return for_each_launch<1>(count, get, launch);
  });
}

}  // namespace lightseq
