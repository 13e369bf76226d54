#include "cc/kernels/cpu/fused_dropout_cpu.h"

#include "Eigen/Core"
#include "unsupported/Eigen/SpecialFunctions"
#include "cc/kernels/cpu/column_sums_cpu.h"
#include "cc/kernels/cpu/dropout_mask_cpu.h"
#include "lightseq/philox.h"

namespace lightseq_tf {
namespace {

using Arr = Eigen::Array<float, Eigen::Dynamic, 1>;
using Map = Eigen::Map<Arr>;

// The activations of activation.h over whole rows with Eigen's vectorised
// exp / erfc (same formulas; the CUDA kernels use CUDA's erfcf / expf).
struct Rows {
  static void F(lightseq::ActIdentity, Map) {}
  static void F(lightseq::ActRelu, Map z) { z = z.max(0.f); }
  static void F(lightseq::ActGelu, Map z) {
    z = 0.5f * z * (-0.70710678118654752f * z).erfc();
  }
  static void F(lightseq::ActGeluTanh, Map z) {
    const Arr u = 0.79788456080286536f * (z + 0.044715f * z.cube());
    z = z / (1.f + (-2.f * u).exp());
  }
  // dz *= act'(z_in); z_in is overwritten.
  static void Df(lightseq::ActIdentity, Map, Map) {}
  static void Df(lightseq::ActRelu, Map z, Map g) { g = (z > 0.f).select(g, 0.f); }
  static void Df(lightseq::ActGelu, Map z, Map g) {
    g *= 0.5f * (-0.70710678118654752f * z).erfc() +
         0.39894228040143268f * z * (-0.5f * z.square()).exp();
  }
  static void Df(lightseq::ActGeluTanh, Map z, Map g) {
    const Arr u = 0.79788456080286536f * (z + 0.044715f * z.cube());
    const Arr sg = 1.f / (1.f + (-2.f * u).exp());
    g *= sg + 2.f * z * sg * (1.f - sg) * 0.79788456080286536f * (1.f + 0.134145f * z.square());
  }
};

template <typename T>
void Load(const T* p, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
}
template <typename T>
void Store(const float* in, int64_t n, T* p) {
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(in[i]);
}

int64_t RowCost(int64_t hidden, CpuAct act) {
  return hidden * (act == CpuAct::kIdentity || act == CpuAct::kRelu ? 8 : 30);
}

template <class Act, typename T>
void ForwardRows(const T* x, const T* bias, const T* residual, T* y, int64_t r0, int64_t r1,
                 int64_t hidden, uint64_t seed, float rate) {
  const lightseq::DropoutArgs d = lightseq::make_dropout_args(seed, rate);
  Arr z(hidden), m(hidden), b(hidden), t(hidden);
  if (bias) Load(bias, hidden, b.data());
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t e = r * hidden;
    Load(x + e, hidden, z.data());
    if (bias) z += b;
    Rows::F(Act(), Map(z.data(), hidden));
    FillDropoutMask(d, e, hidden, m.data());
    z *= m;
    if (residual) {
      Load(residual + e, hidden, t.data());
      z += t;
    }
    Store(z.data(), hidden, y + e);
  }
}

template <class Act, typename T>
void BackwardRows(const T* dy, const T* x, const T* bias, T* dx, float* dbias_part, int64_t r0,
                  int64_t r1, int64_t hidden, uint64_t seed, float rate) {
  const lightseq::DropoutArgs d = lightseq::make_dropout_args(seed, rate);
  Arr g(hidden), m(hidden), b(hidden), z(hidden);
  if (bias && Act::kNeedsInput) Load(bias, hidden, b.data());
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t e = r * hidden;
    Load(dy + e, hidden, g.data());
    FillDropoutMask(d, e, hidden, m.data());
    g *= m;
    if (Act::kNeedsInput) {
      Load(x + e, hidden, z.data());
      if (bias) z += b;
      Rows::Df(Act(), Map(z.data(), hidden), Map(g.data(), hidden));
    }
    Store(g.data(), hidden, dx + e);
    if (dbias_part) Map(dbias_part, hidden) += g;
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
