// Row-major GEMMs for the CPU twins of the whole-layer ops, float32
// accumulation like the GPU's: one large product as an Eigen tensor
// contraction on TensorFlow's thread pool (the engine of TF's own CPU
// MatMul), many small ones (attention heads) spread over the pool. Half and
// bfloat16 operands are widened to float first (Eigen has no fast half GEMM
// and would accumulate in half).
#pragma once

#include <cstdint>

#include "tensorflow/core/platform/threadpool.h"

namespace lightseq_tf {

// C[M, N] = op(A)[M, K] op(B)[K, N], dense row-major
// operands (A is stored [K, M] when ta, B [N, K] when tb).
template <typename T>
void GemmCpu(tensorflow::thread::ThreadPool* pool, bool ta, bool tb, int64_t M, int64_t N,
             int64_t K, const T* A, const T* B, T* C);

// The same for `batch` independent products, operand i at A + i*M*K,
// B + i*K*N, C + i*M*N.
template <typename T>
void BatchedGemmCpu(tensorflow::thread::ThreadPool* pool, bool ta, bool tb, int64_t batch,
                    int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C);

}  // namespace lightseq_tf
