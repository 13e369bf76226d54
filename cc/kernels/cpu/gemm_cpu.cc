#define EIGEN_USE_THREADS
#include "cc/kernels/cpu/gemm_cpu.h"

#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "unsupported/Eigen/CXX11/Tensor"

namespace lightseq_tf {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat>;

template <typename T>
void Widen(tensorflow::thread::ThreadPool* pool, const T* in, float* out, int64_t n) {
  pool->ParallelFor(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = static_cast<float>(in[i]);
  });
}

// op(A) as an Eigen matrix expression over dense row-major storage.
ConstMap Stored(const float* p, bool t, int64_t rows, int64_t cols) {
  return t ? ConstMap(p, cols, rows) : ConstMap(p, rows, cols);
}

void SmallGemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A,
               const float* B, float* C) {
  Eigen::Map<RowMat> c(C, M, N);
  const ConstMap a = Stored(A, ta, M, K), b = Stored(B, tb, K, N);
  if (ta && tb) c.noalias() = a.transpose() * b.transpose();
  else if (ta) c.noalias() = a.transpose() * b;
  else if (tb) c.noalias() = a * b.transpose();
  else c.noalias() = a * b;
}

}  // namespace

template <typename T>
void GemmCpu(tensorflow::thread::ThreadPool* pool, bool ta, bool tb, int64_t M, int64_t N,
             int64_t K, const T* A, const T* B, T* C) {
  using Map2 = Eigen::TensorMap<Eigen::Tensor<const float, 2, Eigen::RowMajor>>;
  const Eigen::ThreadPoolDevice device(pool->AsEigenThreadPool(), pool->NumThreads());
  std::vector<float> wa, wb, wc;
  const float *a = reinterpret_cast<const float*>(A), *b = reinterpret_cast<const float*>(B);
  float* c = reinterpret_cast<float*>(C);
  if constexpr (!std::is_same_v<T, float>) {
    wa.resize(M * K);
    wb.resize(K * N);
    wc.resize(M * N);
    Widen(pool, A, wa.data(), M * K);
    Widen(pool, B, wb.data(), K * N);
    a = wa.data();
    b = wb.data();
    c = wc.data();
  }
  const Map2 ma(a, ta ? K : M, ta ? M : K), mb(b, tb ? N : K, tb ? K : N);
  Eigen::TensorMap<Eigen::Tensor<float, 2, Eigen::RowMajor>> mc(c, M, N);
  const Eigen::array<Eigen::IndexPair<Eigen::Index>, 1> dims{
      Eigen::IndexPair<Eigen::Index>(ta ? 0 : 1, tb ? 1 : 0)};
  mc.device(device) = ma.contract(mb, dims);
  if constexpr (!std::is_same_v<T, float>) {
    pool->ParallelFor(M * N, 1, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) C[i] = static_cast<T>(wc[i]);
    });
  }
}

template <typename T>
void BatchedGemmCpu(tensorflow::thread::ThreadPool* pool, bool ta, bool tb, int64_t batch,
                    int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
  const int64_t cost = 2 * M * N * K;
  pool->ParallelFor(batch, cost, [&](int64_t begin, int64_t end) {
    std::vector<float> wa, wb, wc;  // widened operands of one product (half types)
    for (int64_t i = begin; i < end; ++i) {
      const T* a = A + i * M * K;
      const T* b = B + i * K * N;
      T* c = C + i * M * N;
      if constexpr (std::is_same_v<T, float>) {
        SmallGemm(ta, tb, M, N, K, a, b, c);
      } else {
        wa.resize(M * K);
        wb.resize(K * N);
        wc.resize(M * N);
        for (int64_t j = 0; j < M * K; ++j) wa[j] = static_cast<float>(a[j]);
        for (int64_t j = 0; j < K * N; ++j) wb[j] = static_cast<float>(b[j]);
        SmallGemm(ta, tb, M, N, K, wa.data(), wb.data(), wc.data());
        for (int64_t j = 0; j < M * N; ++j) c[j] = static_cast<T>(wc[j]);
      }
    }
  });
}

#define LIGHTSEQ_INSTANTIATE(T)                                                               \
  template void GemmCpu<T>(tensorflow::thread::ThreadPool*, bool, bool, int64_t, int64_t,     \
                           int64_t, const T*, const T*, T*);                                   \
  template void BatchedGemmCpu<T>(tensorflow::thread::ThreadPool*, bool, bool, int64_t,       \
                                  int64_t, int64_t, int64_t, const T*, const T*, T*);
LIGHTSEQ_INSTANTIATE(float)
LIGHTSEQ_INSTANTIATE(Eigen::half)
LIGHTSEQ_INSTANTIATE(Eigen::bfloat16)
#undef LIGHTSEQ_INSTANTIATE

}  // namespace lightseq_tf
