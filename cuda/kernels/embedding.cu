// Fused input embedding (lookup * scale + sinusoid + dropout) and its
// deterministic table gradient (stable radix sort of the ids, then one thread
// group per distinct id summing its tokens in order; no atomics).
#include "lightseq/embedding.h"

#include <cub/device/device_radix_sort.cuh>

#include "common.cuh"
#include "lightseq/philox.h"
#include "lightseq/sinusoid.h"

namespace lightseq {
namespace detail {
namespace {

constexpr int kVec = 8;          // elements per thread access (one Philox call)
constexpr int kFwdThreads = 256;
constexpr int kLanes = 32;       // backward: threads across a 256-column tile
constexpr int kGroups = 8;       // backward: thread groups striding over a run
constexpr int kTile = kLanes * kVec;

// The id of token t as an index into the table, or -1 when it gives no row
// (out of range, or padding when padding_id >= 0).
template <typename I>
__device__ __forceinline__ int64_t row_of(const I* ids, int64_t t, int64_t vocab, int64_t pad,
                                          bool* bad) {
  const int64_t id = static_cast<int64_t>(ids[t]);
  *bad = id < 0 || id >= vocab;
  return (*bad || id == pad) ? -1 : id;
}

// One thread per kVec columns of a token (VEC) or per element (scalar).
template <typename T, typename TT, typename I, bool VEC>
__global__ void __launch_bounds__(kFwdThreads)
    lightseq_embedding_fwd(const I* __restrict__ ids, const TT* __restrict__ table,
                           T* __restrict__ y, EmbeddingShape s, EmbeddingArgs a,
                           DropoutArgs d, float log_inc, unsigned long long* bad_index) {
  constexpr int W = VEC ? kVec : 1;
  const int64_t per_row = s.hidden / W;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= s.tokens * per_row) return;
  const int64_t t = i / per_row;
  const int64_t c0 = (i - t * per_row) * W;
  bool bad;
  const int64_t row = row_of(ids, t, s.vocab, a.padding_id, &bad);
  if (bad && c0 == 0 && bad_index) atomicMin(bad_index, static_cast<unsigned long long>(t));
  const int64_t pos = a.pos_offset + t % s.seq_len;
  const int64_t e0 = t * s.hidden + c0;
  float v[W];
  if (row >= 0) {
    if constexpr (VEC) {
      load_vec<TT, kVec>(table + row * s.hidden + c0, v);
    } else {
      v[0] = to_float(table[row * s.hidden + c0]);
    }
#pragma unroll
    for (int k = 0; k < W; ++k) {
      v[k] *= a.scale;
      if (a.positions) v[k] += sinusoid(pos, c0 + k, s.hidden, log_inc);
    }
    if (d.threshold < 65536u) {
      if constexpr (VEC) {
        const Philox4 r = philox4x32_10(d.seed, static_cast<uint64_t>(e0) / kDropoutElemsPerCall);
#pragma unroll
        for (int k = 0; k < W; ++k) v[k] = dropout_keep(r, k, d.threshold) ? v[k] * d.scale : 0.f;
      } else {
        v[0] = dropout_keep_element(d.seed, e0, d.threshold) ? v[0] * d.scale : 0.f;
      }
    }
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = 0.f;
  }
  if constexpr (VEC) {
    store_vec<T, kVec>(y + e0, v);
  } else {
    y[e0] = from_float<T>(v[0]);
  }
}

// keys[t] = the table row token t updates (vocab = none: sorts last), vals[t] = t.
template <typename I>
__global__ void lightseq_embedding_sort_keys(const I* __restrict__ ids, int32_t* keys,
                                             int32_t* vals, int64_t tokens, int64_t vocab,
                                             int64_t pad) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= tokens) return;
  bool bad;
  const int64_t row = row_of(ids, t, vocab, pad, &bad);
  keys[t] = static_cast<int32_t>(row >= 0 ? row : vocab);
  vals[t] = static_cast<int32_t>(t);
}

// Block (i, tile): if sorted position i starts a run of one id, sums that
// run's dy rows (times scale and the dropout mask) over the tile's columns:
// group g takes run positions i + g, i + g + kGroups, ...; the groups'
// partial sums are added in group order, so the result does not depend on
// scheduling.
template <typename T, typename TT, bool VEC>
__global__ void __launch_bounds__(kLanes* kGroups)
    lightseq_embedding_bwd(const T* __restrict__ dy, const int32_t* __restrict__ keys,
                           const int32_t* __restrict__ tok, TT* __restrict__ dtable,
                           EmbeddingShape s, float scale, DropoutArgs d) {
  __shared__ float part[kGroups][kTile];
  const int64_t i = blockIdx.x;
  const int32_t key = keys[i];
  if (key >= s.vocab || (i > 0 && keys[i - 1] == key)) return;
  const int lane = threadIdx.x, g = threadIdx.y;
  const int64_t tile0 = static_cast<int64_t>(blockIdx.y) * kTile;
  // Column of this lane's k-th element: 8 contiguous (VEC) or lane-strided.
  auto col = [&](int k) { return VEC ? tile0 + lane * kVec + k : tile0 + lane + kLanes * k; };
  float acc[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) acc[k] = 0.f;
  const bool dropping = d.threshold < 65536u;
  const float mult = dropping ? scale * d.scale : scale;
  for (int64_t j = i + g; j < s.tokens && keys[j] == key; j += kGroups) {
    const int64_t t = tok[j];
    const T* row = dy + t * s.hidden;
    float v[kVec];
    if (VEC && col(0) < s.hidden) {
      load_vec<T, kVec>(row + col(0), v);
    } else {
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[k] = col(k) < s.hidden ? to_float(row[col(k)]) : 0.f;
    }
    if (dropping) {
      if constexpr (VEC) {
        const Philox4 r = philox4x32_10(
            d.seed, static_cast<uint64_t>(t * s.hidden + col(0)) / kDropoutElemsPerCall);
#pragma unroll
        for (int k = 0; k < kVec; ++k) v[k] = dropout_keep(r, k, d.threshold) ? v[k] : 0.f;
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k)
          if (col(k) < s.hidden && !dropout_keep_element(d.seed, t * s.hidden + col(k), d.threshold))
            v[k] = 0.f;
      }
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] += v[k];
  }
#pragma unroll
  for (int k = 0; k < kVec; ++k) part[g][lane * kVec + k] = acc[k];
  __syncthreads();
  // Thread (lane, g) now finishes kVec / kGroups ... simply: group 0 reduces.
  if (g != 0) return;
  float out[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    float sum = 0.f;
#pragma unroll
    for (int h = 0; h < kGroups; ++h) sum += part[h][lane * kVec + k];
    out[k] = sum * mult;
  }
  TT* drow = dtable + static_cast<int64_t>(key) * s.hidden;
  if (VEC && col(0) < s.hidden) {
    store_vec<TT, kVec>(drow + col(0), out);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if (col(k) < s.hidden) drow[col(k)] = from_float<TT>(out[k]);
  }
}

// Bits covering keys 0..vocab (vocab is the "no row" key).
int key_bits(int64_t vocab) {
  int b = 1;
  while ((int64_t{1} << b) <= vocab) ++b;
  return b;
}

size_t align16(size_t n) { return (n + 15) & ~size_t{15}; }

size_t sort_temp_bytes(int64_t tokens, int64_t vocab) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr),
                                  static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr), static_cast<int>(tokens), 0,
                                  key_bits(vocab));
  return bytes;
}

bool valid(const EmbeddingShape& s, const EmbeddingArgs& a) {
  return s.tokens >= 0 && s.tokens < (int64_t{1} << 31) && s.hidden >= 1 && s.vocab >= 1 &&
         s.vocab < (int64_t{1} << 31) - 1 && s.seq_len >= 1 && a.pos_offset >= 0 &&
         valid_dropout_rate(a.rate);
}

template <typename F>
cudaError_t dispatch_ids(bool ids_int64, F&& f) {
  return ids_int64 ? f(int64_t()) : f(int32_t());
}

}  // namespace
}  // namespace detail

cudaError_t embedding_fwd(DType dtype, DType table_dtype, const void* ids, bool ids_int64,
                          const void* table, void* y, EmbeddingShape s, const EmbeddingArgs& a,
                          unsigned long long* bad_index, cudaStream_t stream) {
  using namespace detail;
  if (!valid(s, a)) return cudaErrorInvalidValue;
  if (s.tokens == 0) return cudaSuccess;
  const DropoutArgs d = make_dropout_args(a.seed, a.rate);
  const float log_inc = sinusoid_log_increment(s.hidden);
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_dtype(table_dtype, [&](auto tt) {
      using TT = decltype(tt);
      return dispatch_ids(ids_int64, [&](auto it) {
        using I = decltype(it);
        const bool vec = s.hidden % kVec == 0 && is_aligned(table, 16) && is_aligned(y, 16);
        const int64_t threads = s.tokens * (vec ? s.hidden / kVec : s.hidden);
        const int64_t blocks = (threads + kFwdThreads - 1) / kFwdThreads;
        if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
        auto kernel = vec ? lightseq_embedding_fwd<T, TT, I, true>
                          : lightseq_embedding_fwd<T, TT, I, false>;
        kernel<<<static_cast<unsigned>(blocks), kFwdThreads, 0, stream>>>(
            static_cast<const I*>(ids), static_cast<const TT*>(table), static_cast<T*>(y), s, a,
            d, log_inc, bad_index);
        return cudaGetLastError();
      });
    });
  });
}

size_t embedding_bwd_workspace_bytes(int64_t tokens, int64_t vocab) {
  using namespace detail;
  if (tokens <= 0) return 0;
  return 4 * align16(sizeof(int32_t) * tokens) + align16(sort_temp_bytes(tokens, vocab));
}

cudaError_t embedding_bwd(DType dtype, DType table_dtype, const void* dy, const void* ids,
                          bool ids_int64, void* dtable, EmbeddingShape s, const EmbeddingArgs& a,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  using namespace detail;
  if (!valid(s, a)) return cudaErrorInvalidValue;
  const size_t table_bytes = static_cast<size_t>(s.vocab) * s.hidden * dtype_size(table_dtype);
  cudaError_t err = cudaMemsetAsync(dtable, 0, table_bytes, stream);
  if (err != cudaSuccess || s.tokens == 0) return err;
  if (workspace_bytes < embedding_bwd_workspace_bytes(s.tokens, s.vocab))
    return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(workspace);
  const size_t n_bytes = align16(sizeof(int32_t) * s.tokens);
  int32_t* keys_in = reinterpret_cast<int32_t*>(ws);
  int32_t* keys = reinterpret_cast<int32_t*>(ws + n_bytes);
  int32_t* vals_in = reinterpret_cast<int32_t*>(ws + 2 * n_bytes);
  int32_t* tok = reinterpret_cast<int32_t*>(ws + 3 * n_bytes);
  void* temp = ws + 4 * n_bytes;
  size_t temp_bytes = workspace_bytes - 4 * n_bytes;

  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((s.tokens + threads - 1) / threads);
  err = dispatch_ids(ids_int64, [&](auto it) {
    using I = decltype(it);
    lightseq_embedding_sort_keys<I><<<blocks, threads, 0, stream>>>(
        static_cast<const I*>(ids), keys_in, vals_in, s.tokens, s.vocab, a.padding_id);
    return cudaGetLastError();
  });
  if (err != cudaSuccess) return err;
  // Stable: tokens of one id stay in token order, which fixes the summation order.
  err = cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys, vals_in, tok,
                                        static_cast<int>(s.tokens), 0, key_bits(s.vocab), stream);
  if (err != cudaSuccess) return err;
  const DropoutArgs d = make_dropout_args(a.seed, a.rate);
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_dtype(table_dtype, [&](auto tt) {
      using TT = decltype(tt);
      const bool vec = s.hidden % kVec == 0 && is_aligned(dy, 16) && is_aligned(dtable, 16);
      const dim3 grid(static_cast<unsigned>(s.tokens),
                      static_cast<unsigned>((s.hidden + kTile - 1) / kTile));
      if (grid.y > 65535) return cudaErrorInvalidValue;
      auto kernel = vec ? lightseq_embedding_bwd<T, TT, true> : lightseq_embedding_bwd<T, TT, false>;
      kernel<<<grid, dim3(kLanes, kGroups), 0, stream>>>(static_cast<const T*>(dy), keys, tok,
                                                         static_cast<TT*>(dtable), s, a.scale, d);
      return cudaGetLastError();
    });
  });
}

}  // namespace lightseq
