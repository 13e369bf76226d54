// OpKernels of the dropout family (LightseqDropout, LightseqBiasDropoutResidual
// [+Grad], LightseqBiasActDropout [+Grad]): validate, allocate through
// TensorFlow, call the CPU twin or the cuda/ launchers. The seed lives in host
// memory on GPU too (it keys the Philox stream; no device round trip).
#define EIGEN_USE_THREADS
#include <string>

#include "cc/kernels/cpu/fused_dropout_cpu.h"
#include "cc/kernels/tf_glue.h"
#include "lightseq/activation.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/bias_act_dropout.h"
#include "lightseq/bias_dropout_residual.h"
#include "lightseq/dropout.h"
#endif

namespace lightseq_tf {

enum class Kind { kDropout, kBiasDropoutResidual, kBiasActDropout };

namespace {

// x: [..., H] (rank >= 1) against bias: [H] and, if given, residual: x's shape.
absl::Status CheckBias(const Tensor& x, const Tensor& bias, const Tensor* residual,
                       int64_t* rows, int64_t* hidden) {
  if (x.dims() < 1)
    return errors::InvalidArgument("x must have rank >= 1 ([..., hidden]), got a scalar");
  *hidden = x.dim_size(x.dims() - 1);
  if (bias.dims() != 1 || bias.dim_size(0) != *hidden)
    return errors::InvalidArgument("bias must have shape [", *hidden,
                                   "] (the last dimension of x), got ", ShapeStr(bias.shape()));
  if (residual && residual->shape() != x.shape())
    return errors::InvalidArgument("residual must have the shape of x ", ShapeStr(x.shape()),
                                   ", got ", ShapeStr(residual->shape()));
  *rows = *hidden == 0 ? 0 : x.NumElements() / *hidden;
  return absl::OkStatus();
}

}  // namespace

// What one launch needs, device-independent.
struct DropoutCall {
  Kind kind;
  lightseq::Activation act;
  int64_t rows, hidden;
  uint64_t seed;
  float rate;
};

template <typename Device, typename T>
struct DropoutLaunch;

template <typename T>
struct DropoutLaunch<CPUDevice, T> {
  static CpuAct Act(const DropoutCall& c) {
    return c.kind == Kind::kBiasActDropout ? ToCpuAct(c.act) : CpuAct::kIdentity;
  }
  static void Forward(OpKernelContext* ctx, const DropoutCall& c, const Tensor& x,
                      const Tensor* bias, const Tensor* residual, Tensor* y) {
    FusedDropoutForwardCpu<T>(CpuPool(ctx), Act(c),
                              Ptr<T>(&x), Ptr<T>(bias), Ptr<T>(residual), MutPtr<T>(y), c.rows,
                              c.hidden, c.seed, c.rate);
  }
  static void Backward(OpKernelContext* ctx, const DropoutCall& c, const Tensor& dy,
                       const Tensor* x, const Tensor* bias, Tensor* dx, Tensor* dbias) {
    Tensor ws;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT,
                                           TensorShape({FusedDropoutBackwardCpuWorkspace(
                                               c.rows, c.hidden)}),
                                           &ws));
    FusedDropoutBackwardCpu<T>(CpuPool(ctx), Act(c),
                               Ptr<T>(&dy), Ptr<T>(x), Ptr<T>(bias), MutPtr<T>(dx),
                               MutPtr<T>(dbias), MutPtr<float>(&ws), c.rows, c.hidden, c.seed,
                               c.rate);
  }
};

#if GOOGLE_CUDA

template <typename T>
struct DropoutLaunch<GPUDevice, T> {
  static void Forward(OpKernelContext* ctx, const DropoutCall& c, const Tensor& x,
                      const Tensor* bias, const Tensor* residual, Tensor* y) {
    const auto dt = CudaDType<T>::value;
    auto stream = ctx->eigen_gpu_device().stream();
    switch (c.kind) {
      case Kind::kDropout:
        LIGHTSEQ_OP_REQUIRES_CUDA(ctx,
                                  lightseq::dropout_fwd(dt, Ptr<T>(&x), MutPtr<T>(y),
                                                        x.NumElements(), c.seed, c.rate, stream),
                                  "lightseq::dropout_fwd");
        return;
      case Kind::kBiasDropoutResidual:
        LIGHTSEQ_OP_REQUIRES_CUDA(
            ctx,
            lightseq::bias_dropout_residual_fwd(dt, Ptr<T>(&x), Ptr<T>(bias), Ptr<T>(residual),
                                                MutPtr<T>(y), c.rows, c.hidden, c.seed, c.rate,
                                                stream),
            "lightseq::bias_dropout_residual_fwd");
        return;
      case Kind::kBiasActDropout:
        LIGHTSEQ_OP_REQUIRES_CUDA(
            ctx,
            lightseq::bias_act_dropout_fwd(dt, c.act, Ptr<T>(&x), Ptr<T>(bias), MutPtr<T>(y),
                                           c.rows, c.hidden, c.seed, c.rate, stream),
            "lightseq::bias_act_dropout_fwd");
        return;
    }
  }
  static void Backward(OpKernelContext* ctx, const DropoutCall& c, const Tensor& dy,
                       const Tensor* x, const Tensor* bias, Tensor* dx, Tensor* dbias) {
    const auto dt = CudaDType<T>::value;
    auto stream = ctx->eigen_gpu_device().stream();
    const bool act = c.kind == Kind::kBiasActDropout;
    const size_t bytes =
        act ? lightseq::bias_act_dropout_bwd_workspace_bytes(dt, c.rows, c.hidden)
            : lightseq::bias_dropout_residual_bwd_workspace_bytes(dt, c.rows, c.hidden);
    Tensor ws;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_UINT8,
                                           TensorShape({static_cast<int64_t>(bytes)}), &ws));
    if (act) {
      LIGHTSEQ_OP_REQUIRES_CUDA(
          ctx,
          lightseq::bias_act_dropout_bwd(dt, c.act, Ptr<T>(&dy), Ptr<T>(x), Ptr<T>(bias),
                                         MutPtr<T>(dx), MutPtr<T>(dbias), MutPtr<uint8_t>(&ws),
                                         c.rows, c.hidden, c.seed, c.rate, stream),
          "lightseq::bias_act_dropout_bwd");
    } else {
      LIGHTSEQ_OP_REQUIRES_CUDA(
          ctx,
          lightseq::bias_dropout_residual_bwd(dt, Ptr<T>(&dy), MutPtr<T>(dx), MutPtr<T>(dbias),
                                              MutPtr<uint8_t>(&ws), c.rows, c.hidden, c.seed,
                                              c.rate, stream),
          "lightseq::bias_dropout_residual_bwd");
    }
  }
};
#endif  // GOOGLE_CUDA

// Attributes shared by forward and gradient ops.
class DropoutAttrs {
 protected:
  DropoutAttrs(OpKernelConstruction* ctx, Kind kind) {
    call_.kind = kind;
    call_.act = lightseq::Activation::kRelu;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &call_.rate));
    OP_REQUIRES_OK(ctx, CheckDropoutRate(call_.rate));
    if (kind == Kind::kBiasActDropout) {
      std::string name;
      OP_REQUIRES_OK(ctx, ctx->GetAttr("activation", &name));
      OP_REQUIRES_OK(ctx, ParseActivation(name, &call_.act));
    }
  }
  DropoutCall call_{};
};

template <typename Device, typename T, Kind K>
class FusedDropoutOp : public OpKernel, DropoutAttrs {
 public:
  explicit FusedDropoutOp(OpKernelConstruction* ctx) : OpKernel(ctx), DropoutAttrs(ctx, K) {}

  void Compute(OpKernelContext* ctx) override {
    DropoutCall c = call_;
    const Tensor& x = ctx->input(0);
    const Tensor* bias = K == Kind::kDropout ? nullptr : &ctx->input(1);
    const Tensor* residual = K == Kind::kBiasDropoutResidual ? &ctx->input(2) : nullptr;
    const int seed_index = K == Kind::kDropout ? 1 : (K == Kind::kBiasDropoutResidual ? 3 : 2);
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(seed_index), &c.seed));
    if (bias) {
      OP_REQUIRES_OK(ctx, CheckBias(x, *bias, residual, &c.rows, &c.hidden));
    } else {
      // The mask depends on the flat index only; any rows x hidden split works.
      c.hidden = x.dims() > 0 ? x.dim_size(x.dims() - 1) : 1;
      c.rows = c.hidden == 0 ? 0 : x.NumElements() / c.hidden;
    }
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    if (x.NumElements() == 0) return;
    DropoutLaunch<Device, T>::Forward(ctx, c, x, bias, residual, y);
  }
};

template <typename Device, typename T, Kind K>
class FusedDropoutGradOp : public OpKernel, DropoutAttrs {
 public:
  explicit FusedDropoutGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), DropoutAttrs(ctx, K) {}

  void Compute(OpKernelContext* ctx) override {
    DropoutCall c = call_;
    const Tensor& dy = ctx->input(0);
    const bool act = K == Kind::kBiasActDropout;
    const Tensor* x = act ? &ctx->input(1) : nullptr;
    const Tensor* bias = act ? &ctx->input(2) : nullptr;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(act ? 3 : 1), &c.seed));
    OP_REQUIRES(ctx, dy.dims() >= 1,
                errors::InvalidArgument("dy must have rank >= 1 ([..., hidden]), got a scalar"));
    if (act) {
      OP_REQUIRES_OK(ctx, CheckBias(*x, *bias, &dy, &c.rows, &c.hidden));
    } else {
      c.hidden = dy.dim_size(dy.dims() - 1);
      c.rows = c.hidden == 0 ? 0 : dy.NumElements() / c.hidden;
    }
    Tensor *dx, *dbias;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, dy.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({c.hidden}), &dbias));
    if (c.hidden == 0) return;
    DropoutLaunch<Device, T>::Backward(ctx, c, dy, x, bias, dx, dbias);
  }
};

#define LIGHTSEQ_REGISTER_ALL(DEV, DEVICE, T, HOST_SEED)                                     \
  REGISTER_KERNEL_BUILDER(Name("LightseqDropout").Device(DEV).TypeConstraint<T>("T")        \
                              HOST_SEED,                                                      \
                          FusedDropoutOp<DEVICE, T, Kind::kDropout>);                         \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("LightseqBiasDropoutResidual").Device(DEV).TypeConstraint<T>("T") HOST_SEED,       \
      FusedDropoutOp<DEVICE, T, Kind::kBiasDropoutResidual>);                                 \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("LightseqBiasDropoutResidualGrad").Device(DEV).TypeConstraint<T>("T") HOST_SEED,   \
      FusedDropoutGradOp<DEVICE, T, Kind::kBiasDropoutResidual>);                             \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("LightseqBiasActDropout").Device(DEV).TypeConstraint<T>("T") HOST_SEED,            \
      FusedDropoutOp<DEVICE, T, Kind::kBiasActDropout>);                                      \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("LightseqBiasActDropoutGrad").Device(DEV).TypeConstraint<T>("T") HOST_SEED,        \
      FusedDropoutGradOp<DEVICE, T, Kind::kBiasActDropout>);

#define LIGHTSEQ_NO_HOST_MEMORY
LIGHTSEQ_REGISTER_ALL(tensorflow::DEVICE_CPU, CPUDevice, float, LIGHTSEQ_NO_HOST_MEMORY)
LIGHTSEQ_REGISTER_ALL(tensorflow::DEVICE_CPU, CPUDevice, Eigen::half, LIGHTSEQ_NO_HOST_MEMORY)
LIGHTSEQ_REGISTER_ALL(tensorflow::DEVICE_CPU, CPUDevice, Eigen::bfloat16, LIGHTSEQ_NO_HOST_MEMORY)
#if GOOGLE_CUDA
LIGHTSEQ_REGISTER_ALL(tensorflow::DEVICE_GPU, GPUDevice, float, .HostMemory("seed"))
LIGHTSEQ_REGISTER_ALL(tensorflow::DEVICE_GPU, GPUDevice, Eigen::half, .HostMemory("seed"))
LIGHTSEQ_REGISTER_ALL(tensorflow::DEVICE_GPU, GPUDevice, Eigen::bfloat16, .HostMemory("seed"))
#endif
#undef LIGHTSEQ_REGISTER_ALL
#undef LIGHTSEQ_NO_HOST_MEMORY

}  // namespace lightseq_tf
