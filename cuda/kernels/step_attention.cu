// Decoding attention (step_attention.h): one block per query row (sentence,
// head, new position). Phase 1: scores q . K[j] into shared memory, a few
// threads per cached row (16-byte reads, several rows in flight per thread);
// phase 2: the block's max / exp / sum; phase 3: sum_j p_j V[j], threads over
// head_dim in key groups summed in a fixed order (deterministic). Bound by
// the cache read, which is read exactly once: one step is latency-bound
// unless each thread has several loads in flight, hence the unrolling.
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

// Where key / value j of one (sentence, head) lives: a stored row, or (self-
// attention, j >= cached) this call's projection plus bias, rounded as a
// bias-add op in T would store it (and as phase 0 writes it to the cache).
template <typename T, bool kSelf>
struct KeyRows {
  const StepArgs<T>& a;
  int64_t b, h, H;
  const T* keys;    // row j at keys + j * H
  const T* values;

  __device__ KeyRows(const StepArgs<T>& args, int64_t b_, int64_t h_)
      : a(args), b(b_), h(h_), H(args.heads * args.d),
        keys(args.keys + (b_ * args.stored) * H + h_ * args.d),
        values(args.values + (b_ * args.stored) * H + h_ * args.d) {}

  template <int VEC>
  __device__ __forceinline__ void load(bool value, int64_t j, int64_t e0,
                                       float (&out)[VEC]) const {
    if (!kSelf || j < a.cached) {
      const T* p = (value ? values : keys) + j * H + e0;
      if constexpr (VEC > 1) {
        detail::load_vec<T, VEC>(p, out);
      } else {
        out[0] = to_float(p[0]);
      }
      return;
    }
    const int64_t col = (value ? 2 * H : H) + h * a.d + e0;
    const T* r = a.q_raw + (b * a.q_len + j - a.cached) * a.q_stride + col;
#pragma unroll
    for (int k = 0; k < VEC; ++k) out[k] = rounded<T>(to_float(r[k]) + to_float(a.q_bias[col + k]));
  }
};

// VEC > 1: d / VEC threads share a key row (a power of two <= 32, one 16-byte
// access each) and kUnroll rows per thread are loaded before use, so a block
// keeps 16-64 rows in flight; VEC == 1 (head sizes that do not split that
// way): a warp per key row, lanes striding over d.
template <typename T, bool kSelf, int VEC>
__global__ void __launch_bounds__(kThreads) step_attention_kernel(StepArgs<T> a) {
  constexpr int kUnroll = 4;
  extern __shared__ float smem[];
  const int64_t d = a.d, H = a.heads * d;
  const int64_t i = blockIdx.x % a.q_len;
  const int64_t bh = blockIdx.x / a.q_len;
  const int64_t h = bh % a.heads, b = bh / a.heads;
  const int64_t row = b * a.q_len + i;
  const int tpk = VEC > 1 ? static_cast<int>(d / VEC) : 32;  // threads per key row
  const int kpb = kThreads / tpk;   // rows per block step (phase 1) / key groups (phase 3)
  const int sub = threadIdx.x % tpk, slot = threadIdx.x / tpk;
  const int G = VEC > 1 ? kpb : (d <= kThreads ? kThreads / static_cast<int>(d) : 1);
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
  const KeyRows<T, kSelf> rows(a, b, h);

  // Phase 0: the query (+ bias); self-attention writes this position's key
  // and value into the cache (no block reads a cache row >= cached).
  for (int64_t e = threadIdx.x; e < d; e += kThreads) {
    q[e] = rounded<T>(to_float(a.q_raw[row * a.q_stride + h * d + e]) +
                      to_float(a.q_bias[h * d + e]));
    if (kSelf) {
      const int64_t at = (b * a.stored + a.cached + i) * H + h * d + e;
      float k[1], v[1];
      rows.template load<1>(false, a.cached + i, e, k);
      rows.template load<1>(true, a.cached + i, e, v);
      a.keys[at] = from_float<T>(k[0]);
      a.values[at] = from_float<T>(v[0]);
    }
  }
  __syncthreads();

  // This thread's VEC elements of rows base + slot + u * kpb, u < kUnroll
  // (zeros past the visible keys), all loads issued before any is used.
  auto load_rows = [&](bool value, int64_t base, float (&out)[kUnroll][VEC]) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = base + slot + u * kpb;
      if (j < n) {
        rows.template load<VEC>(value, j, sub * VEC, out[u]);
      } else {
#pragma unroll
        for (int k = 0; k < VEC; ++k) out[u][k] = 0.f;
      }
    }
  };

  // Phase 1: scores (loop bounds uniform over the block: the shuffles need
  // every lane).
  if constexpr (VEC > 1) {
    float qv[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) qv[k] = q[sub * VEC + k];
    for (int64_t base = 0; base < n; base += kpb * kUnroll) {
      float kv[kUnroll][VEC];
      load_rows(false, base, kv);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float dot = 0.f;
#pragma unroll
        for (int k = 0; k < VEC; ++k) dot += qv[k] * kv[u][k];
        for (int off = tpk >> 1; off > 0; off >>= 1)
          dot += __shfl_xor_sync(0xffffffffu, dot, off);
        const int64_t j = base + slot + u * kpb;
        if (sub == 0 && j < n) score[j] = dot * a.scale;
      }
    }
  } else {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int64_t j = warp; j < n; j += kWarps) {
      float dot = 0.f;
      for (int64_t e = lane; e < d; e += 32) {
        float k[1];
        rows.template load<1>(false, j, e, k);
        dot += q[e] * k[0];
      }
      dot = detail::warp_allreduce_sum(dot);
      if (lane == 0) score[j] = dot * a.scale;
    }
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

  // Phase 3: context = sum_j p_j V[j]; key group g sums keys g, g + G, ...
  // into part[g], the groups are summed in a fixed order.
  if constexpr (VEC > 1) {
    float acc[VEC] = {};
    for (int64_t base = 0; base < n; base += kpb * kUnroll) {
      float vv[kUnroll][VEC];
      load_rows(true, base, vv);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t j = base + slot + u * kpb;
        const float p = j < n ? score[j] : 0.f;
#pragma unroll
        for (int k = 0; k < VEC; ++k) acc[k] += p * vv[u][k];
      }
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) part[slot * d + sub * VEC + k] = acc[k];
  } else {
    for (int64_t s = threadIdx.x; s < G * d; s += kThreads) {
      const int64_t g = s / d, e = s % d;
      float acc = 0.f;
      for (int64_t j = g; j < n; j += G) {
        float v[1];
        rows.template load<1>(true, j, e, v);
        acc += score[j] * v[0];
      }
      part[s] = acc;
    }
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
  return detail::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = 16 / sizeof(T);
    const int64_t tpk = s.head_dim / kVec;
    const bool vec = s.head_dim % kVec == 0 && tpk <= 32 && (tpk & (tpk - 1)) == 0 &&
                     detail::is_aligned(keys, 16) && detail::is_aligned(values, 16);
    const int64_t groups = vec ? kThreads / tpk
                               : (s.head_dim <= kThreads ? kThreads / s.head_dim : 1);
    const size_t smem = sizeof(float) * (s.head_dim * (1 + groups) + kWarps + max_keys);
    StepArgs<T> a{static_cast<const T*>(q_raw), static_cast<const T*>(q_bias), q_stride,
                  static_cast<T*>(keys), static_cast<T*>(values), stored, cached, lengths,
                  static_cast<T*>(ctx), s.q_len, s.heads, s.head_dim, scale};
    const unsigned grid = static_cast<unsigned>(blocks);
    if (vec) {
      step_attention_kernel<T, kSelf, kVec><<<grid, kThreads, smem, stream>>>(a);
    } else {
      step_attention_kernel<T, kSelf, 1><<<grid, kThreads, smem, stream>>>(a);
    }
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
