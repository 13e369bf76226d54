// lightseq::Gemm on TensorFlow's own BLAS of the op's stream (GPU builds):
// TF's cuBLAS handle and workspace, and TF's TF32 / op-determinism settings
// (tf.config.experimental.enable_tensor_float_32_execution,
// enable_op_determinism), exactly as TF's MatMul gets them. No cuBLAS of ours
// is linked, so the library still loads on machines without CUDA.
#pragma once
#if GOOGLE_CUDA

#include "absl/status/status.h"
#include "lightseq/gemm.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/kernels/numeric_options_utils.h"
#include "xla/stream_executor/blas.h"
#include "xla/stream_executor/device_address.h"
#include "xla/stream_executor/stream.h"
#include "xla/stream_executor/stream_executor.h"

namespace lightseq_tf {

class TfBlasGemm final : public lightseq::Gemm {
 public:
  explicit TfBlasGemm(tensorflow::OpKernelContext* ctx)
      : stream_(ctx->op_device_context() ? ctx->op_device_context()->stream() : nullptr),
        blas_(stream_ ? stream_->parent()->AsBlas() : nullptr) {}

  // InternalError unless the stream has BLAS support.
  absl::Status Available() const {
    return blas_ ? absl::OkStatus() : absl::InternalError("no BLAS support on the op's stream");
  }
  // The status of the last failed call (what cudaErrorUnknown stood for).
  const absl::Status& last_error() const { return last_error_; }

  cudaError_t run(lightseq::DType dtype, const lightseq::GemmCall& g) const override {
    namespace se = stream_executor;
    auto op = [](bool t) { return t ? se::blas::Transpose::kTranspose
                                    : se::blas::Transpose::kNoTranspose; };
    const se::DeviceAddressBase a(const_cast<void*>(g.a)), b(const_cast<void*>(g.b));
    se::DeviceAddressBase c(g.c);
    const float alpha = 1.f;  // float for every input type (float32 accumulation)
    absl::Status s = blas_->DoBlasGemmStridedBatched(
        stream_, op(g.trans_a), op(g.trans_b), g.m, g.n, g.k, DataType(dtype), &alpha, a,
        static_cast<int>(g.lda), g.stride_a, b, static_cast<int>(g.ldb), g.stride_b, &g.beta, &c,
        static_cast<int>(g.ldc), g.stride_c, static_cast<int>(g.batch),
        tensorflow::GetNumericOptions(), se::blas::CallContext::kNone);
    if (s.ok()) return cudaSuccess;
    last_error_ = s;
    return cudaErrorUnknown;
  }

 private:
  static stream_executor::blas::DataType DataType(lightseq::DType t) {
    namespace se = stream_executor;
    switch (t) {
      case lightseq::DType::kFloat16: return se::blas::ToDataType<Eigen::half>::value;
      case lightseq::DType::kBFloat16: return se::blas::ToDataType<Eigen::bfloat16>::value;
      default: return se::blas::ToDataType<float>::value;
    }
  }

  stream_executor::Stream* stream_;
  stream_executor::blas::BlasSupport* blas_;
  mutable absl::Status last_error_;
};

}  // namespace lightseq_tf
#endif  // GOOGLE_CUDA
