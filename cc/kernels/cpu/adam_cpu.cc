#include "cc/kernels/cpu/adam_cpu.h"

#include <algorithm>
#include <vector>

#include "Eigen/Core"
#include "tsl/platform/denormal.h"

// Bit-exactness with numpy (and with the GPU kernel's __f*_rn intrinsics)
// needs every multiply and add rounded on its own: no a*b+c contraction into
// FMA, which GCC does by default when the target has FMA (-march=native).
#pragma GCC optimize("fp-contract=off")

namespace lightseq_tf {
namespace {

constexpr int64_t kChunk = 16384;  // elements per work item of the pool

// See lightseq/adam_step.h for the order; G is float, Eigen::half or bfloat16.
template <typename G>
void AdamRange(float* __restrict p, float* __restrict m, float* __restrict v,
               const G* __restrict grad, int64_t n, const lightseq::AdamScalars& s) {
  const bool decay = s.weight_decay != 0.f;
  for (int64_t i = 0; i < n; ++i) {
    float g = static_cast<float>(grad[i]) / s.grad_scale;
    float pi = p[i];
    if (decay) {
      if (s.adamw) pi = pi - s.lr_wd * pi;
      else g = g + s.weight_decay * pi;
    }
    const float mi = s.beta1 * m[i] + s.one_minus_beta1 * g;
    const float vi = s.beta2 * v[i] + s.one_minus_beta2 * (g * g);
    const float d = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    p[i] = pi - s.step_size * (mi / d);
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

template <typename G>
void MultiTensorAdamCpu(tensorflow::thread::ThreadPool* pool, const AdamTensorCpu<G>* tensors,
                        int count, const lightseq::AdamScalars& s) {
  // chunk_end[i]: chunks of tensors 0..i, so one ParallelFor covers the list
  // and small tensors share a thread with their neighbours.
  std::vector<int64_t> chunk_end(count);
  int64_t chunks = 0;
  for (int i = 0; i < count; ++i) {
    chunks += (tensors[i].numel + kChunk - 1) / kChunk;
    chunk_end[i] = chunks;
  }
  pool->ParallelFor(chunks, 20 * kChunk, [&](int64_t c0, int64_t c1) {
    // TF's pool threads flush denormals to zero; Adam's v = (1 - beta2) g^2
    // reaches them for small grads, and numpy and the GPU keep them.
    tsl::port::ScopedDontFlushDenormal keep_denormals;
    int t = static_cast<int>(std::upper_bound(chunk_end.begin(), chunk_end.end(), c0) -
                             chunk_end.begin());
    for (int64_t c = c0; c < c1; ++c) {
      while (chunk_end[t] <= c) ++t;
      const AdamTensorCpu<G>& x = tensors[t];
      const int64_t start = (c - (t ? chunk_end[t - 1] : 0)) * kChunk;
      const int64_t n = std::min(kChunk, x.numel - start);
      AdamRange<G>(x.param + start, x.m + start, x.v + start, x.grad + start, n, s);
    }
  });
}

template void MultiTensorAdamCpu<float>(tensorflow::thread::ThreadPool*,
                                        const AdamTensorCpu<float>*, int,
                                        const lightseq::AdamScalars&);
template void MultiTensorAdamCpu<Eigen::half>(tensorflow::thread::ThreadPool*,
                                              const AdamTensorCpu<Eigen::half>*, int,
                                              const lightseq::AdamScalars&);
template void MultiTensorAdamCpu<Eigen::bfloat16>(tensorflow::thread::ThreadPool*,
                                                  const AdamTensorCpu<Eigen::bfloat16>*, int,
                                                  const lightseq::AdamScalars&);

}  // namespace lightseq_tf
