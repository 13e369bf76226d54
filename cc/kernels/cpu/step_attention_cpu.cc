// One (sentence, head, new position) query per work item, as the CUDA kernel
// has one per block: the same float32 math in the same order of keys.
#include "cc/kernels/cpu/step_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "Eigen/Core"

namespace lightseq_tf {
namespace {

template <typename T>
float Rounded(float v) {  // what a bias-add op in T stores
  return static_cast<float>(static_cast<T>(v));
}

// The shared body. Self-attention (kSelf): keys j < cached from the cache,
// j >= cached this call's position j - cached, from q_raw (key at column
// H + h*d, value at 2H + h*d) plus bias.
template <typename T, bool kSelf>
void Attend(tensorflow::thread::ThreadPool* pool, const T* q_raw, const T* q_bias,
            int64_t q_stride, const T* keys, const T* values, int64_t stored, int64_t cached,
            const int32_t* lengths, T* ctx, const lightseq::StepAttentionShape& s, float scale) {
  const int64_t d = s.head_dim, H = s.heads * d, n_items = s.batch * s.heads * s.q_len;
  const int64_t max_keys = cached + (kSelf ? s.q_len : 0);
  pool->ParallelFor(n_items, 4 * max_keys * d, [&](int64_t i0, int64_t i1) {
    std::vector<float> q(d), score(std::max<int64_t>(max_keys, 1)), acc(d);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t i = item % s.q_len, bh = item / s.q_len;
      const int64_t h = bh % s.heads, b = bh / s.heads, row = b * s.q_len + i;
      int64_t n = kSelf ? cached + i + 1 : cached;
      if (!kSelf && lengths != nullptr) n = std::min<int64_t>(std::max(lengths[b], 0), n);
      auto elem = [&](bool value, int64_t j, int64_t e) -> float {
        if (!kSelf || j < cached)
          return static_cast<float>((value ? values : keys)[(b * stored + j) * H + h * d + e]);
        const int64_t col = (value ? 2 * H : H) + h * d + e;
        return Rounded<T>(static_cast<float>(q_raw[(b * s.q_len + j - cached) * q_stride + col]) +
                          static_cast<float>(q_bias[col]));
      };
      for (int64_t e = 0; e < d; ++e)
        q[e] = Rounded<T>(static_cast<float>(q_raw[row * q_stride + h * d + e]) +
                          static_cast<float>(q_bias[h * d + e]));
      float m = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        float dot = 0.f;
        for (int64_t e = 0; e < d; ++e) dot += q[e] * elem(false, j, e);
        score[j] = dot * scale;
        m = std::max(m, score[j]);
      }
      float sum = 0.f;
      for (int64_t j = 0; j < n; ++j) {
        score[j] = std::exp(score[j] - m);
        sum += score[j];
      }
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t e = 0; e < d; ++e) acc[e] += score[j] * elem(true, j, e);
      const float inv = n > 0 ? 1.f / sum : 0.f;
      for (int64_t e = 0; e < d; ++e) ctx[row * H + h * d + e] = static_cast<T>(acc[e] * inv);
    }
  });
}

}  // namespace

template <typename T>
void StepSelfAttentionCpu(tensorflow::thread::ThreadPool* pool, const T* qkv_raw,
                          const T* qkv_bias, T* cache_keys, T* cache_values, int64_t capacity,
                          int64_t cache_len, T* ctx, lightseq::StepAttentionShape s,
                          float scale) {
  const int64_t d = s.head_dim, H = s.heads * d;
  // This call's keys and values into the cache (rows cache_len ..), which
  // Attend reads from q_raw instead: no item reads a row another writes.
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < s.q_len; ++i) {
      const T* r = qkv_raw + (b * s.q_len + i) * 3 * H;
      const int64_t at = (b * capacity + cache_len + i) * H;
      for (int64_t c = 0; c < H; ++c) {
        cache_keys[at + c] = static_cast<T>(static_cast<float>(r[H + c]) +
                                            static_cast<float>(qkv_bias[H + c]));
        cache_values[at + c] = static_cast<T>(static_cast<float>(r[2 * H + c]) +
                                              static_cast<float>(qkv_bias[2 * H + c]));
      }
    }
  Attend<T, true>(pool, qkv_raw, qkv_bias, 3 * H, cache_keys, cache_values, capacity, cache_len,
                  nullptr, ctx, s, scale);
}

template <typename T>
void StepCrossAttentionCpu(tensorflow::thread::ThreadPool* pool, const T* q_raw, const T* q_bias,
                           const T* mem_keys, const T* mem_values, int64_t mem_len,
                           const int32_t* mem_lengths, T* ctx, lightseq::StepAttentionShape s,
                           float scale) {
  Attend<T, false>(pool, q_raw, q_bias, s.heads * s.head_dim, mem_keys, mem_values, mem_len,
                   mem_len, mem_lengths, ctx, s, scale);
}

#define LIGHTSEQ_INSTANTIATE(T)                                                                \
  template void StepSelfAttentionCpu<T>(tensorflow::thread::ThreadPool*, const T*, const T*,   \
                                        T*, T*, int64_t, int64_t, T*,                          \
                                        lightseq::StepAttentionShape, float);                  \
  template void StepCrossAttentionCpu<T>(tensorflow::thread::ThreadPool*, const T*, const T*,  \
                                         const T*, const T*, int64_t, const int32_t*, T*,      \
                                         lightseq::StepAttentionShape, float);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
