// Decoding attention (step_attention.h): one block per query row (sentence,
// head, new position). Phase 1: a warp per key, lanes over head_dim
// (coalesced reads of one cached row), scores to shared memory; phase 2: the
// block's max / exp / sum; phase 3: threads over head_dim (coalesced reads of
// value rows), key groups summed in a fixed order. Memory-bound by the cache
// read, which is read exactly once.
#include "lightseq/step_attention.h"

#include "common.cuh"

namespace lightseq {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

template <typename T>
__device__ __forceinline__ float rounded(float v) {  // what a bias-add op in T stores
  return to_float<T>(from_float<T>(v));
}

template <typename T>
struct StepArgs {
  const T* q_raw;        // [batch*q_len, q_stride]: the query at column head*d
  const T* q_bias;       // [q_stride] (self: the qkv bias; cross: the q bias)
  int64_t q_stride;
  T* keys;               // [batch, stored, heads, d]
  T* values;
  int64_t stored;        // rows per sentence in keys / values (capacity or mem_len)
  int64_t cached;        // self: cache_len (new keys follow); cross: mem_len
  const int32_t* lengths;  // cross only (may be null)
  T* ctx;                // [batch*q_len, heads*d]
  int64_t q_len, heads, d;
  float scale;
};

__device__ __forceinline__ float block_reduce(float v, bool is_max, float* red) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = is_max ? fmaxf(v, o) : v + o;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // red may still be read by the previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) v = is_max ? fmaxf(v, red[w]) : v + red[w];
  return v;
}

template <typename T, bool kSelf>
__global__ void __launch_bounds__(kThreads) step_attention_kernel(StepArgs<T> a) {
  extern __shared__ float smem[];
  const int64_t d = a.d, H = a.heads * d;
  const int64_t i = blockIdx.x % a.q_len;
  const int64_t bh = blockIdx.x / a.q_len;
  const int64_t h = bh % a.heads, b = bh / a.heads;
  const int64_t row = b * a.q_len + i;
  const int G = d <= kThreads ? kThreads / static_cast<int>(d) : 1;  // key groups, phase 3
  float* q = smem;                 // [d]
  float* part = q + d;             // [G * d]
  float* red = part + G * d;       // [kWarps]
  float* score = red + kWarps;     // [keys]

  int64_t n;  // visible keys
  if (kSelf) {
    n = a.cached + i + 1;
  } else {
    n = a.cached;
    if (a.lengths != nullptr) n = min(max(static_cast<int64_t>(a.lengths[b]), int64_t{0}), n);
  }
  const T* kbase = a.keys + b * a.stored * H + h * d;  // key j at kbase + j * H
  const T* vbase = a.values + b * a.stored * H + h * d;
  // Self-attention: key j >= cached is new position j - cached of this call,
  // its key at column H + h*d of that row of q_raw, its value at 2H + h*d.
  auto new_row = [&](int64_t j) { return a.q_raw + (b * a.q_len + j - a.cached) * a.q_stride + H + h * d; };
  const T* new_kb = a.q_bias + H + h * d;

  for (int64_t e = threadIdx.x; e < d; e += kThreads) {
    q[e] = rounded<T>(to_float(a.q_raw[row * a.q_stride + h * d + e]) +
                      to_float(a.q_bias[h * d + e]));
    if (kSelf) {  // this position's key and value into the cache
      const T* r = a.q_raw + row * a.q_stride + h * d;
      const int64_t at = (b * a.stored + a.cached + i) * H + h * d + e;
      a.keys[at] = from_float<T>(to_float(r[H + e]) + to_float(a.q_bias[H + h * d + e]));
      a.values[at] =
          from_float<T>(to_float(r[2 * H + e]) + to_float(a.q_bias[2 * H + h * d + e]));
    }
  }
  __syncthreads();

  // Phase 1: scores.
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int64_t j = warp; j < n; j += kWarps) {
    float dot = 0.f;
    if (!kSelf || j < a.cached) {
      const T* kr = kbase + j * H;
      for (int64_t e = lane; e < d; e += 32) dot += q[e] * to_float(kr[e]);
    } else {
      const T* kr = new_row(j);
      for (int64_t e = lane; e < d; e += 32) dot += q[e] * rounded<T>(to_float(kr[e]) +
                                                                      to_float(new_kb[e]));
    }
    dot = detail::warp_allreduce_sum(dot);
    if (lane == 0) score[j] = dot * a.scale;
  }
  __syncthreads();

  // Phase 2: softmax (unnormalized; 1 / sum applied at the end).
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) m = fmaxf(m, score[j]);
  m = block_reduce(m, true, red);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) {
    const float p = expf(score[j] - m);
    score[j] = p;
    sum += p;
  }
  sum = block_reduce(sum, false, red);  // its barriers also publish score[]
  const float inv = n > 0 ? 1.f / sum : 0.f;

  // Phase 3: context = sum_j p_j V[j], key groups g < G over head_dim slots.
  for (int64_t slot = threadIdx.x; slot < G * d; slot += kThreads) {
    const int64_t g = slot / d, e = slot % d;
    float acc = 0.f;
    for (int64_t j = g; j < n; j += G) {
      float v;
      if (!kSelf || j < a.cached) {
        v = to_float(vbase[j * H + e]);
      } else {
        v = rounded<T>(to_float(new_row(j)[H + e]) + to_float(new_kb[H + e]));
      }
      acc += score[j] * v;
    }
    part[slot] = acc;
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < d; e += kThreads) {
    float s = 0.f;
    for (int g = 0; g < G; ++g) s += part[g * d + e];
    a.ctx[row * H + h * d + e] = from_float<T>(s * inv);
  }
}

template <bool kSelf>
cudaError_t launch(DType dtype, const void* q_raw, const void* q_bias, int64_t q_stride,
                   void* keys, void* values, int64_t stored, int64_t cached,
                   const int32_t* lengths, void* ctx, StepAttentionShape s, int64_t max_keys,
                   float scale, cudaStream_t stream) {
  if (!step_attention_shape_valid(s, max_keys)) return cudaErrorInvalidValue;
  const int64_t blocks = s.batch * s.heads * s.q_len;
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  const int64_t G = s.head_dim <= kThreads ? kThreads / s.head_dim : 1;
  const size_t smem = sizeof(float) * (s.head_dim + G * s.head_dim + kWarps + max_keys);
  return detail::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    StepArgs<T> a{static_cast<const T*>(q_raw), static_cast<const T*>(q_bias), q_stride,
                  static_cast<T*>(keys), static_cast<T*>(values), stored, cached, lengths,
                  static_cast<T*>(ctx), s.q_len, s.heads, s.head_dim, scale};
    step_attention_kernel<T, kSelf>
        <<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t step_self_attention(DType dtype, const void* qkv_raw, const void* qkv_bias,
                                void* cache_keys, void* cache_values, int64_t capacity,
                                int64_t cache_len, void* ctx, StepAttentionShape shape,
                                float scale, cudaStream_t stream) {
  if (cache_len < 0 || cache_len + shape.q_len > capacity) return cudaErrorInvalidValue;
  return launch<true>(dtype, qkv_raw, qkv_bias, 3 * shape.heads * shape.head_dim, cache_keys,
                      cache_values, capacity, cache_len, nullptr, ctx, shape,
                      cache_len + shape.q_len, scale, stream);
}

cudaError_t step_cross_attention(DType dtype, const void* q_raw, const void* q_bias,
                                 const void* mem_keys, const void* mem_values, int64_t mem_len,
                                 const int32_t* mem_lengths, void* ctx, StepAttentionShape shape,
                                 float scale, cudaStream_t stream) {
  if (mem_len < 0) return cudaErrorInvalidValue;
  // Read only: the kernel writes keys / values in the self-attention case alone.
  return launch<false>(dtype, q_raw, q_bias, shape.heads * shape.head_dim,
                       const_cast<void*>(mem_keys), const_cast<void*>(mem_values), mem_len,
                       mem_len, mem_lengths, ctx, shape, mem_len, scale, stream);
}

}  // namespace lightseq
