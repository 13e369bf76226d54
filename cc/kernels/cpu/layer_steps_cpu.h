// The steps the CPU whole-layer twins (encoder_layer_cpu.cc,
// decoder_layer_cpu.cc) are made of, over untyped buffers of one element type
// T: what the GPU layers call through lightseq/*.h, here on the CPU twins.
#pragma once

#include <cstdint>

#include "cc/kernels/cpu/fused_dropout_cpu.h"
#include "cc/kernels/cpu/gemm_cpu.h"
#include "cc/kernels/cpu/heads_cpu.h"
#include "cc/kernels/cpu/layer_norm_cpu.h"
#include "cc/kernels/cpu/softmax_cpu.h"
#include "lightseq/dtype.h"
#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

// The layouts (lightseq/*_layer_layout.h) depend on the element size only.
inline lightseq::DType LayoutDType(int element_size) {
  return element_size == 4 ? lightseq::DType::kFloat32 : lightseq::DType::kFloat16;
}

template <typename T>
struct CpuSteps {
  tensorflow::thread::ThreadPool* pool;
  int64_t rows, hidden;  // token rows and hidden size of the row-wise steps
  float epsilon;
  float* sums;           // column-sum partials (LayerNorm / dropout-family backwards)

  static T* P(void* p) { return static_cast<T*>(p); }
  static const T* P(const void* p) { return static_cast<const T*>(p); }

  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, const void* B,
            void* C) const {
    GemmCpu<T>(pool, ta, tb, M, N, K, P(A), P(B), P(C));
  }
  void bgemm(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A,
             const void* B, void* C) const {
    BatchedGemmCpu<T>(pool, ta, tb, batch, M, N, K, P(A), P(B), P(C));
  }
  void ln_fwd(const void* x, const void* g, const void* b, void* y, float* m, float* r) const {
    LayerNormForwardCpu<T>(pool, P(x), P(g), P(b), P(y), m, r, rows, hidden, epsilon);
  }
  void ln_bwd(const void* dy, const void* x, const float* m, const float* r, const void* g,
              void* dx, void* dg, void* db) const {
    LayerNormBackwardCpu<T>(pool, P(dy), P(x), m, r, P(g), P(dx), P(dg), P(db), sums, rows,
                            hidden);
  }
  // out = residual + dropout(x + bias) over `n` rows of `cols` (bias may be null).
  void bdr_fwd(const void* x, const void* bias, const void* residual, void* out, int64_t n,
               int64_t cols, uint64_t seed, float rate) const {
    FusedDropoutForwardCpu<T>(pool, CpuAct::kIdentity, P(x), P(bias), P(residual), P(out), n,
                              cols, seed, rate);
  }
  // dx = dropout'(dy); dbias = its column sums.
  void bdr_bwd(const void* dy, void* dx, void* dbias, int64_t n, int64_t cols, uint64_t seed,
               float rate) const {
    FusedDropoutBackwardCpu<T>(pool, CpuAct::kIdentity, P(dy), nullptr, nullptr, P(dx),
                               P(dbias), sums, n, cols, seed, rate);
  }
  void add(const void* a, const void* b, void* out) const {
    bdr_fwd(a, nullptr, b, out, rows, hidden, 0, 0.f);
  }
  void act_fwd(lightseq::Activation act, const void* x, const void* bias, void* y, int64_t cols,
               uint64_t seed, float rate) const {
    FusedDropoutForwardCpu<T>(pool, ToCpuAct(act), P(x), P(bias), nullptr, P(y), rows, cols,
                              seed, rate);
  }
  void act_bwd(lightseq::Activation act, const void* dy, const void* x, const void* bias,
               void* dx, void* dbias, int64_t cols, uint64_t seed, float rate) const {
    FusedDropoutBackwardCpu<T>(pool, ToCpuAct(act), P(dy), P(x), P(bias), P(dx), P(dbias), sums,
                               rows, cols, seed, rate);
  }
  void split(const void* x, const void* bias, void* out, lightseq::HeadsShape s) const {
    SplitHeadsCpu<T>(pool, P(x), P(bias), P(out), s);
  }
  void merge(const void* x, void* out, lightseq::HeadsShape s) const {
    MergeHeadsCpu<T>(pool, P(x), P(out), s);
  }
  void softmax(const void* scores, const int32_t* lengths, void* probs, lightseq::SoftmaxShape s,
               float scale, bool causal, uint64_t seed, float rate) const {
    AttnSoftmaxForwardCpu<T>(pool, P(scores), lengths, P(probs), s, scale, causal, seed, rate);
  }
  void softmax_bwd(const void* dprobs, const void* scores, const int32_t* lengths, void* dscores,
                   lightseq::SoftmaxShape s, float scale, bool causal, uint64_t seed,
                   float rate) const {
    AttnSoftmaxBackwardCpu<T>(pool, P(dprobs), P(scores), lengths, P(dscores), s, scale, causal,
                              seed, rate);
  }
};

}  // namespace lightseq_tf
