#include "cc/kernels/cpu/embedding_cpu.h"

#include <algorithm>
#include <vector>

#include "cc/kernels/cpu/dropout_mask_cpu.h"
#include "lightseq/philox.h"
#include "lightseq/sinusoid.h"

namespace lightseq_tf {
namespace {

// The GPU backward's chunk of sorted positions (one warp each).
constexpr int64_t kChunk = 16;

// The table row token t reads / updates, or -1 (padding with padding_id >= 0).
template <typename I>
int64_t RowOf(const I* ids, int64_t t, int64_t pad) {
  const int64_t id = static_cast<int64_t>(ids[t]);
  return id == pad ? -1 : id;
}

}  // namespace

template <typename T, typename TT, typename I>
void EmbeddingForwardCpu(tensorflow::thread::ThreadPool* pool, const I* ids, const TT* table,
                         T* y, const lightseq::EmbeddingShape& s,
                         const lightseq::EmbeddingArgs& a) {
  const int64_t H = s.hidden;
  // The signal depends on the position only: one [seq_len, H] table per call.
  std::vector<float> signal(a.positions ? s.seq_len * H : 0);
  if (a.positions) {
    const float log_inc = lightseq::sinusoid_log_increment(H);
    for (int64_t l = 0; l < s.seq_len; ++l)
      for (int64_t c = 0; c < H; ++c)
        signal[l * H + c] = lightseq::sinusoid(a.pos_offset + l, c, H, log_inc);
  }
  const lightseq::DropoutArgs d = lightseq::make_dropout_args(a.seed, a.rate);
  pool->ParallelFor(s.tokens, 12 * H, [&](int64_t t0, int64_t t1) {
    std::vector<float> v(H), m(H);
    for (int64_t t = t0; t < t1; ++t) {
      T* out = y + t * H;
      const int64_t row = RowOf(ids, t, a.padding_id);
      if (row < 0) {
        std::fill(out, out + H, static_cast<T>(0.f));
        continue;
      }
      const TT* src = table + row * H;
      for (int64_t c = 0; c < H; ++c) v[c] = static_cast<float>(src[c]) * a.scale;
      if (a.positions) {
        const float* sig = signal.data() + (t % s.seq_len) * H;
        for (int64_t c = 0; c < H; ++c) v[c] += sig[c];
      }
      FillDropoutMask(d, t * H, H, m.data());
      for (int64_t c = 0; c < H; ++c) out[c] = static_cast<T>(v[c] * m[c]);
    }
  });
}

template <typename T, typename TT, typename I>
void EmbeddingBackwardCpu(tensorflow::thread::ThreadPool* pool, const T* dy, const I* ids,
                          TT* dtable, const lightseq::EmbeddingShape& s,
                          const lightseq::EmbeddingArgs& a) {
  const int64_t H = s.hidden, V = s.vocab;
  // Stable counting sort of the tokens by id: start[v] .. start[v + 1] lists
  // the tokens of id v in token order.
  std::vector<int64_t> start(V + 1, 0), order(s.tokens);
  for (int64_t t = 0; t < s.tokens; ++t) {
    const int64_t row = RowOf(ids, t, a.padding_id);
    if (row >= 0) ++start[row + 1];
  }
  for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t t = 0; t < s.tokens; ++t) {
      const int64_t row = RowOf(ids, t, a.padding_id);
      if (row >= 0) order[next[row]++] = t;
    }
  }
  const lightseq::DropoutArgs d = lightseq::make_dropout_args(a.seed, a.rate);
  const float mult = d.threshold < 65536u ? a.scale * d.scale : a.scale;
  const int64_t avg_tokens = V > 0 ? s.tokens / V + 1 : 1;
  pool->ParallelFor(V, (2 + 4 * avg_tokens) * H, [&](int64_t v0, int64_t v1) {
    std::vector<float> acc(H), piece(H), m(H);
    for (int64_t v = v0; v < v1; ++v) {
      TT* out = dtable + v * H;
      if (start[v] == start[v + 1]) {
        std::fill(out, out + H, static_cast<TT>(0.f));
        continue;
      }
      // Pieces: this id's sorted positions cut at multiples of kChunk, each
      // summed in order from 0; then the pieces added in order.
      for (int64_t j = start[v]; j < start[v + 1];) {
        const int64_t end = std::min(start[v + 1], (j / kChunk + 1) * kChunk);
        std::fill(piece.begin(), piece.end(), 0.f);
        for (; j < end; ++j) {
          const int64_t t = order[j];
          const T* g = dy + t * H;
          FillDropoutMask(d, t * H, H, m.data());
          // The mask is 0 or d.scale: keep-or-drop here, the scale once at the end (as the GPU).
          for (int64_t c = 0; c < H; ++c) piece[c] += m[c] != 0.f ? static_cast<float>(g[c]) : 0.f;
        }
        if (end - 1 < (start[v] / kChunk + 1) * kChunk) {
          acc = piece;  // the first piece
        } else {
          for (int64_t c = 0; c < H; ++c) acc[c] += piece[c];
        }
      }
      for (int64_t c = 0; c < H; ++c) out[c] = static_cast<TT>(acc[c] * mult);
    }
  });
}

#define LIGHTSEQ_INSTANTIATE_I(T, TT, I)                                                          \
  template void EmbeddingForwardCpu<T, TT, I>(tensorflow::thread::ThreadPool*, const I*,       \
                                              const TT*, T*, const lightseq::EmbeddingShape&,   \
                                              const lightseq::EmbeddingArgs&);                   \
  template void EmbeddingBackwardCpu<T, TT, I>(tensorflow::thread::ThreadPool*, const T*,      \
                                               const I*, TT*, const lightseq::EmbeddingShape&,  \
                                               const lightseq::EmbeddingArgs&);
#define LIGHTSEQ_INSTANTIATE(T, TT) \
  LIGHTSEQ_INSTANTIATE_I(T, TT, int32_t) LIGHTSEQ_INSTANTIATE_I(T, TT, int64_t)
LIGHTSEQ_EMBEDDING_TYPES(LIGHTSEQ_INSTANTIATE)
#undef LIGHTSEQ_INSTANTIATE
#undef LIGHTSEQ_INSTANTIATE_I

}  // namespace lightseq_tf
