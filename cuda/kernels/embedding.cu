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
constexpr int kLanes = 32;           // backward: a warp covers a 256-column tile
constexpr int kTile = kLanes * kVec;
constexpr int kTilesPerBlock = 4;    // backward: warps per block, one tile each
constexpr int64_t kChunk = 16;       // backward: sorted positions per warp

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

// Backward, pass 1. The sorted positions are cut into chunks of kChunk; a
// warp walks one chunk for 256 columns (8 per lane), summing each piece (the
// chunk's positions of one id) in order. A piece that is a whole run goes
// straight to dtable; one that continues into the neighbouring chunk goes to
// the chunk's slot: lead (it continues from the previous chunk) or tail (it
// starts a run that continues into the next). Pass 2 adds the slots of each
// multi-chunk run in chunk order. Runs of any length thus spread over many
// warps, and every sum has a fixed order (see embedding_ref.py in tests).
template <typename T, bool VEC>
__device__ __forceinline__ void load_masked(const T* dy, int64_t t, int64_t hidden, int64_t c0,
                                            int lane_stride, const DropoutArgs& d,
                                            float (&v)[kVec]) {
  // Columns: c0 + k (VEC) or c0 + k * lane_stride (scalar, lane-interleaved).
  auto col = [&](int k) { return VEC ? c0 + k : c0 + static_cast<int64_t>(k) * lane_stride; };
  const T* row = dy + t * hidden;
  if (VEC && col(0) < hidden) {
    load_vec<T, kVec>(row + col(0), v);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = col(k) < hidden ? to_float(row[col(k)]) : 0.f;
  }
  if (d.threshold >= 65536u) return;
  if (VEC) {
    const Philox4 r =
        philox4x32_10(d.seed, static_cast<uint64_t>(t * hidden + col(0)) / kDropoutElemsPerCall);
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if (!dropout_keep(r, k, d.threshold)) v[k] = 0.f;
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if (col(k) < hidden && !dropout_keep_element(d.seed, t * hidden + col(k), d.threshold))
        v[k] = 0.f;
  }
}

template <typename TT, bool VEC>
__device__ __forceinline__ void store_row(TT* out, int64_t hidden, int64_t c0, int lane_stride,
                                          const float (&v)[kVec]) {
  if (VEC && c0 < hidden) {
    store_vec<TT, kVec>(out + c0, v);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int64_t c = VEC ? c0 + k : c0 + static_cast<int64_t>(k) * lane_stride;
      if (c < hidden) out[c] = from_float<TT>(v[k]);
    }
  }
}

template <bool VEC>
__device__ __forceinline__ void load_slot(const float* slot, int64_t hidden, int64_t c0,
                                          float (&v)[kVec]) {
  if (VEC) {
    load_vec<float, kVec>(slot + c0, v);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int64_t c = c0 + static_cast<int64_t>(k) * kLanes;
      v[k] = c < hidden ? slot[c] : 0.f;
    }
  }
}

struct BwdArgs {
  const int32_t* keys;  // sorted table rows (vocab: none)
  const int32_t* tok;   // token of each sorted position
  float* lead;          // [chunks, hidden] slots
  float* tail;          // [chunks, hidden]
  float mult;           // scale / (1 - rate)
};

// Column base of this thread: warp y of the block takes tile blockIdx.y * 4 + y.
__device__ __forceinline__ int64_t thread_col(bool vec) {
  const int64_t tile0 = (static_cast<int64_t>(blockIdx.y) * kTilesPerBlock + threadIdx.y) * kTile;
  return vec ? tile0 + threadIdx.x * kVec : tile0 + threadIdx.x;
}

template <typename T, typename TT, bool VEC>
__global__ void __launch_bounds__(kLanes* kTilesPerBlock)
    lightseq_embedding_bwd_chunks(const T* __restrict__ dy, TT* __restrict__ dtable,
                                  EmbeddingShape s, BwdArgs b, DropoutArgs d) {
  const int64_t c0 = thread_col(VEC);
  if (c0 >= s.hidden) return;
  const int64_t chunk = blockIdx.x, p0 = chunk * kChunk;
  const int64_t p1 = p0 + kChunk < s.tokens ? p0 + kChunk : s.tokens;
  int64_t p = p0;
  while (p < p1) {
    const int32_t key = b.keys[p];
    if (key >= s.vocab) break;  // the "no row" keys sort last
    const bool from_prev = p == p0 && p0 > 0 && b.keys[p0 - 1] == key;
    int64_t q = p + 1;  // end of the piece
    while (q < p1 && b.keys[q] == key) ++q;
    float acc[kVec];
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] = 0.f;
    // Four rows in flight, added in position order.
    for (; p + 4 <= q; p += 4) {
      float v[4][kVec];
#pragma unroll
      for (int u = 0; u < 4; ++u) load_masked<T, VEC>(dy, b.tok[p + u], s.hidden, c0, kLanes, d, v[u]);
#pragma unroll
      for (int u = 0; u < 4; ++u)
#pragma unroll
        for (int k = 0; k < kVec; ++k) acc[k] += v[u][k];
    }
    for (; p < q; ++p) {
      float v[kVec];
      load_masked<T, VEC>(dy, b.tok[p], s.hidden, c0, kLanes, d, v);
#pragma unroll
      for (int k = 0; k < kVec; ++k) acc[k] += v[k];
    }
    const bool to_next = p == p1 && p1 < s.tokens && b.keys[p1] == key;
    if (from_prev || to_next) {
      float* slot = (from_prev ? b.lead : b.tail) + chunk * s.hidden;
      store_row<float, VEC>(slot, s.hidden, c0, kLanes, acc);
    } else {
#pragma unroll
      for (int k = 0; k < kVec; ++k) acc[k] *= b.mult;
      store_row<TT, VEC>(dtable + static_cast<int64_t>(key) * s.hidden, s.hidden, c0, kLanes, acc);
    }
  }
}

// Pass 2: block x = the chunk whose tail slot starts a multi-chunk run.
template <typename TT, bool VEC>
__global__ void __launch_bounds__(kLanes* kTilesPerBlock)
    lightseq_embedding_bwd_runs(TT* __restrict__ dtable, EmbeddingShape s, BwdArgs b) {
  const int64_t c0 = thread_col(VEC);
  if (c0 >= s.hidden) return;
  const int64_t chunk = blockIdx.x, last = chunk * kChunk + kChunk - 1;
  if (last + 1 >= s.tokens) return;
  const int32_t key = b.keys[last];
  if (key >= s.vocab || b.keys[last + 1] != key) return;  // no run continues from here
  // Was the tail a lead (the run started in an earlier chunk)? Then not ours.
  int64_t first = last;
  while (first > chunk * kChunk && b.keys[first - 1] == key) --first;
  if (first == chunk * kChunk && chunk > 0 && b.keys[first - 1] == key) return;
  // The run ends at the first sorted position past `last` with a larger key.
  int64_t lo = last + 1, hi = s.tokens;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (b.keys[mid] == key) lo = mid + 1; else hi = mid;
  }
  const int64_t end_chunk = (lo + kChunk - 1) / kChunk;  // chunks chunk+1 .. end_chunk-1 have leads
  float acc[kVec];
  load_slot<VEC>(b.tail + chunk * s.hidden, s.hidden, c0, acc);
  int64_t c = chunk + 1;
  for (; c + 4 <= end_chunk; c += 4) {
    float v[4][kVec];
#pragma unroll
    for (int u = 0; u < 4; ++u) load_slot<VEC>(b.lead + (c + u) * s.hidden, s.hidden, c0, v[u]);
#pragma unroll
    for (int u = 0; u < 4; ++u)
#pragma unroll
      for (int k = 0; k < kVec; ++k) acc[k] += v[u][k];
  }
  for (; c < end_chunk; ++c) {
    float v[kVec];
    load_slot<VEC>(b.lead + c * s.hidden, s.hidden, c0, v);
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] += v[k];
  }
#pragma unroll
  for (int k = 0; k < kVec; ++k) acc[k] *= b.mult;
  store_row<TT, VEC>(dtable + static_cast<int64_t>(key) * s.hidden, s.hidden, c0, kLanes, acc);
}

// Bits covering keys 0..vocab (vocab is the "no row" key).
int key_bits(int64_t vocab) {
  int b = 1;
  while ((int64_t{1} << b) <= vocab) ++b;
  return b;
}

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
        const bool vec = s.hidden % kVec == 0 && is_aligned(table, kVec * sizeof(TT)) &&
                         is_aligned(y, kVec * sizeof(T));
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

namespace {

// Workspace: sort keys/values in and out, the two slot arrays, cub's temp.
struct BwdWorkspace {
  int32_t *keys_in, *keys, *vals_in, *tok;
  float *lead, *tail;
  void* temp;
  size_t temp_bytes, total;
};

BwdWorkspace carve(void* base, int64_t tokens, int64_t vocab, int64_t hidden) {
  using namespace detail;
  BwdWorkspace w{};
  char* p = static_cast<char*>(base);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    char* q = p ? p + off : nullptr;
    off += (bytes + 255) & ~size_t{255};  // 256-byte aligned pieces (vector accesses)
    return q;
  };
  const size_t n = sizeof(int32_t) * tokens;
  const size_t slots = sizeof(float) * ((tokens + kChunk - 1) / kChunk) * hidden;
  w.keys_in = reinterpret_cast<int32_t*>(take(n));
  w.keys = reinterpret_cast<int32_t*>(take(n));
  w.vals_in = reinterpret_cast<int32_t*>(take(n));
  w.tok = reinterpret_cast<int32_t*>(take(n));
  w.lead = reinterpret_cast<float*>(take(slots));
  w.tail = reinterpret_cast<float*>(take(slots));
  w.temp_bytes = sort_temp_bytes(tokens, vocab);
  w.temp = take(w.temp_bytes);
  w.total = off + 256;  // room to align the base
  return w;
}

}  // namespace

size_t embedding_bwd_workspace_bytes(int64_t tokens, int64_t vocab, int64_t hidden) {
  if (tokens <= 0) return 0;
  return carve(nullptr, tokens, vocab, hidden).total;
}

cudaError_t embedding_bwd(DType dtype, DType table_dtype, const void* dy, const void* ids,
                          bool ids_int64, void* dtable, EmbeddingShape s, const EmbeddingArgs& a,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  using namespace detail;
  if (!valid(s, a)) return cudaErrorInvalidValue;
  const size_t table_bytes = static_cast<size_t>(s.vocab) * s.hidden * dtype_size(table_dtype);
  cudaError_t err = cudaMemsetAsync(dtable, 0, table_bytes, stream);
  if (err != cudaSuccess || s.tokens == 0) return err;
  if (workspace_bytes < embedding_bwd_workspace_bytes(s.tokens, s.vocab, s.hidden))
    return cudaErrorInvalidValue;
  const uintptr_t base = (reinterpret_cast<uintptr_t>(workspace) + 255) & ~uintptr_t{255};
  BwdWorkspace w = carve(reinterpret_cast<void*>(base), s.tokens, s.vocab, s.hidden);

  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((s.tokens + threads - 1) / threads);
  err = dispatch_ids(ids_int64, [&](auto it) {
    using I = decltype(it);
    lightseq_embedding_sort_keys<I><<<blocks, threads, 0, stream>>>(
        static_cast<const I*>(ids), w.keys_in, w.vals_in, s.tokens, s.vocab, a.padding_id);
    return cudaGetLastError();
  });
  if (err != cudaSuccess) return err;
  // Stable: tokens of one id stay in token order, which fixes the summation order.
  err = cub::DeviceRadixSort::SortPairs(w.temp, w.temp_bytes, w.keys_in, w.keys, w.vals_in, w.tok,
                                        static_cast<int>(s.tokens), 0, key_bits(s.vocab), stream);
  if (err != cudaSuccess) return err;
  const DropoutArgs d = make_dropout_args(a.seed, a.rate);
  const BwdArgs b{w.keys, w.tok, w.lead, w.tail,
                  d.threshold < 65536u ? a.scale * d.scale : a.scale};
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_dtype(table_dtype, [&](auto tt) {
      using TT = decltype(tt);
      const bool vec = s.hidden % kVec == 0 && is_aligned(dy, kVec * sizeof(T)) &&
                       is_aligned(dtable, kVec * sizeof(TT));
      const int64_t tiles = (s.hidden + kTile - 1) / kTile;
      const dim3 grid(static_cast<unsigned>((s.tokens + kChunk - 1) / kChunk),
                      static_cast<unsigned>((tiles + kTilesPerBlock - 1) / kTilesPerBlock));
      if (grid.y > 65535) return cudaErrorInvalidValue;
      const dim3 block(kLanes, kTilesPerBlock);
      auto chunks = vec ? lightseq_embedding_bwd_chunks<T, TT, true>
                        : lightseq_embedding_bwd_chunks<T, TT, false>;
      chunks<<<grid, block, 0, stream>>>(static_cast<const T*>(dy), static_cast<TT*>(dtable), s,
                                         b, d);
      auto runs = vec ? lightseq_embedding_bwd_runs<TT, true> : lightseq_embedding_bwd_runs<TT, false>;
      runs<<<grid, block, 0, stream>>>(static_cast<TT*>(dtable), s, b);
      return cudaGetLastError();
    });
  });
}

}  // namespace lightseq
