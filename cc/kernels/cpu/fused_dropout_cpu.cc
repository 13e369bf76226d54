#include "cc/kernels/cpu/fused_dropout_cpu.h"

#include "Eigen/Core"
#include "cc/kernels/cpu/column_sums_cpu.h"
#include "lightseq/philox.h"

namespace lightseq_tf {
namespace {

using lightseq::Philox4;

// Keep flags in element order, one Philox call per 8 elements.
class MaskStream {
 public:
  MaskStream(uint64_t seed, float rate)
      : seed_(seed), threshold_(lightseq::dropout_keep_threshold(rate)) {}
  bool keep(uint64_t e) {
    const uint64_t call = e / lightseq::kDropoutElemsPerCall;
    if (call != call_) {
      words_ = lightseq::philox4x32_10(seed_, call);
      call_ = call;
    }
    return lightseq::dropout_keep(words_, static_cast<int>(e % lightseq::kDropoutElemsPerCall),
                                  threshold_);
  }

 private:
  uint64_t seed_;
  uint32_t threshold_;
  uint64_t call_ = ~uint64_t{0};
  Philox4 words_{};
};

int64_t RowCost(int64_t hidden, CpuAct act) {
  return hidden * (act == CpuAct::kIdentity || act == CpuAct::kRelu ? 12 : 40);
}

template <class Act, typename T>
void ForwardRows(const T* x, const T* bias, const T* residual, T* y, int64_t r0, int64_t r1,
                 int64_t hidden, uint64_t seed, float rate) {
  MaskStream mask(seed, rate);
  const float scale = lightseq::dropout_scale(rate);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = 0; c < hidden; ++c) {
      const int64_t e = r * hidden + c;
      float z = static_cast<float>(x[e]);
      if (bias) z += static_cast<float>(bias[c]);
      float v = mask.keep(e) ? Act::f(z) * scale : 0.f;
      if (residual) v += static_cast<float>(residual[e]);
      y[e] = static_cast<T>(v);
    }
  }
}

template <class Act, typename T>
void BackwardRows(const T* dy, const T* x, const T* bias, T* dx, float* dbias_part, int64_t r0,
                  int64_t r1, int64_t hidden, uint64_t seed, float rate) {
  MaskStream mask(seed, rate);
  const float scale = lightseq::dropout_scale(rate);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = 0; c < hidden; ++c) {
      const int64_t e = r * hidden + c;
      float v = mask.keep(e) ? static_cast<float>(dy[e]) * scale : 0.f;
      if (Act::kNeedsInput) {
        float z = static_cast<float>(x[e]);
        if (bias) z += static_cast<float>(bias[c]);
        v *= Act::df(z);
      }
      dx[e] = static_cast<T>(v);
      if (dbias_part) dbias_part[c] += v;
    }
  }
}

// Calls f(Act{}) for the runtime activation.
template <typename F>
void WithAct(CpuAct act, F&& f) {
  switch (act) {
    case CpuAct::kIdentity: return f(lightseq::ActIdentity());
    case CpuAct::kRelu: return f(lightseq::ActRelu());
    case CpuAct::kGelu: return f(lightseq::ActGelu());
    case CpuAct::kGeluTanh: return f(lightseq::ActGeluTanh());
  }
}

}  // namespace

CpuAct ToCpuAct(lightseq::Activation a) {
  switch (a) {
    case lightseq::Activation::kRelu: return CpuAct::kRelu;
    case lightseq::Activation::kGelu: return CpuAct::kGelu;
    case lightseq::Activation::kGeluTanh: return CpuAct::kGeluTanh;
  }
  return CpuAct::kIdentity;
}

template <typename T>
void FusedDropoutForwardCpu(tensorflow::thread::ThreadPool* pool, CpuAct act, const T* x,
                            const T* bias, const T* residual, T* y, int64_t rows,
                            int64_t hidden, uint64_t seed, float rate) {
  WithAct(act, [&](auto a) {
    using Act = decltype(a);
    pool->ParallelFor(rows, RowCost(hidden, act), [&](int64_t r0, int64_t r1) {
      ForwardRows<Act>(x, bias, residual, y, r0, r1, hidden, seed, rate);
    });
  });
}

int64_t FusedDropoutBackwardCpuWorkspace(int64_t rows, int64_t hidden) {
  return ColumnSumsWorkspace(rows, hidden, 1);
}

template <typename T>
void FusedDropoutBackwardCpu(tensorflow::thread::ThreadPool* pool, CpuAct act, const T* dy,
                             const T* x, const T* bias, T* dx, T* dbias, float* workspace,
                             int64_t rows, int64_t hidden, uint64_t seed, float rate) {
  WithAct(act, [&](auto a) {
    using Act = decltype(a);
    if (!dbias) {
      pool->ParallelFor(rows, RowCost(hidden, act), [&](int64_t r0, int64_t r1) {
        BackwardRows<Act>(dy, x, bias, dx, nullptr, r0, r1, hidden, seed, rate);
      });
      return;
    }
    T* const outs[1] = {dbias};
    ParallelRowsWithColumnSums<T, 1>(
        pool, rows, hidden, RowCost(hidden, act), workspace, outs,
        [&](int64_t r0, int64_t r1, float* const* parts) {
          BackwardRows<Act>(dy, x, bias, dx, parts[0], r0, r1, hidden, seed, rate);
        });
  });
}

#define LIGHTSEQ_INSTANTIATE(T)                                                                 \
  template void FusedDropoutForwardCpu<T>(tensorflow::thread::ThreadPool*, CpuAct, const T*,   \
                                          const T*, const T*, T*, int64_t, int64_t, uint64_t,  \
                                          float);                                              \
  template void FusedDropoutBackwardCpu<T>(tensorflow::thread::ThreadPool*, CpuAct, const T*,  \
                                           const T*, const T*, T*, T*, float*, int64_t,        \
                                           int64_t, uint64_t, float);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
