// OpKernels for LightseqLayerNorm / LightseqLayerNormGrad: validate, allocate
// through TensorFlow, then call the CPU twin or the cuda/ launcher.
#define EIGEN_USE_THREADS
#include <cmath>

#include "cc/kernels/cpu/layer_norm_cpu.h"
#include "cc/kernels/tf_glue.h"
#include "lightseq/limits.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/util/work_sharder.h"
#if GOOGLE_CUDA
#include "lightseq/layer_norm.h"
#endif

namespace lightseq_tf {

using tensorflow::DEVICE_CPU;

namespace {

// Checks x: [..., H] with 1 <= H <= kLayerNormMaxHidden and each named
// parameter tensor: [H].
absl::Status CheckLastAxis(const char* x_name, const Tensor& x,
                           std::initializer_list<std::pair<const char*, const Tensor*>> params,
                           int64_t* rows, int64_t* hidden) {
  if (x.dims() < 2)
    return errors::InvalidArgument(x_name, " must have rank >= 2 ([..., hidden]), got shape ",
                                   ShapeStr(x.shape()));
  *hidden = x.dim_size(x.dims() - 1);
  if (*hidden < 1 || *hidden > lightseq::kLayerNormMaxHidden)
    return errors::InvalidArgument("hidden size (last dimension of ", x_name,
                                   ") must be in [1, ", lightseq::kLayerNormMaxHidden,
                                   "], got ", *hidden);
  for (const auto& p : params) {
    if (p.second->dims() != 1 || p.second->dim_size(0) != *hidden)
      return errors::InvalidArgument(p.first, " must have shape [", *hidden,
                                     "] (the last dimension of ", x_name, "), got ",
                                     ShapeStr(p.second->shape()));
  }
  *rows = x.NumElements() / *hidden;
  return absl::OkStatus();
}

TensorShape LeadingShape(const Tensor& x) {
  TensorShape s = x.shape();
  s.RemoveLastDims(1);
  return s;
}

}  // namespace

// Device-specific launch; the OpKernels below are shared.
template <typename Device, typename T>
struct LayerNormLaunch;

template <typename T>
struct LayerNormLaunch<CPUDevice, T> {
  static void Forward(OpKernelContext* ctx, const Tensor& x, const Tensor& gamma,
                      const Tensor& beta, Tensor* y, Tensor* mean, Tensor* rstd,
                      int64_t rows, int64_t hidden, float eps) {
    LayerNormForwardCpu<T>(CpuPool(ctx), Ptr<T>(x), Ptr<T>(gamma), Ptr<T>(beta), MutPtr<T>(y),
                           MutPtr<float>(mean), MutPtr<float>(rstd), rows, hidden, eps);
  }
  static void Backward(OpKernelContext* ctx, const Tensor& dy, const Tensor& x,
                       const Tensor& mean, const Tensor& rstd, const Tensor& gamma,
                       Tensor* dx, Tensor* dgamma, Tensor* dbeta, int64_t rows,
                       int64_t hidden) {
    Tensor ws;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT,
                                           TensorShape({LayerNormBackwardCpuWorkspace(rows, hidden)}),
                                           &ws));
    LayerNormBackwardCpu<T>(CpuPool(ctx), Ptr<T>(dy), Ptr<T>(x), Ptr<float>(mean), Ptr<float>(rstd),
                            Ptr<T>(gamma), MutPtr<T>(dx), MutPtr<T>(dgamma), MutPtr<T>(dbeta),
                            MutPtr<float>(&ws), rows, hidden);
  }
};

#if GOOGLE_CUDA

template <typename T>
struct LayerNormLaunch<GPUDevice, T> {
  static void Forward(OpKernelContext* ctx, const Tensor& x, const Tensor& gamma,
                      const Tensor& beta, Tensor* y, Tensor* mean, Tensor* rstd,
                      int64_t rows, int64_t hidden, float eps) {
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::layer_norm_fwd(CudaDType<T>::value, Ptr<T>(x), Ptr<T>(gamma), Ptr<T>(beta),
                                 MutPtr<T>(y), MutPtr<float>(mean), MutPtr<float>(rstd), rows,
                                 static_cast<int>(hidden), eps, ctx->eigen_gpu_device().stream()),
        "lightseq::layer_norm_fwd");
  }
  static void Backward(OpKernelContext* ctx, const Tensor& dy, const Tensor& x,
                       const Tensor& mean, const Tensor& rstd, const Tensor& gamma,
                       Tensor* dx, Tensor* dgamma, Tensor* dbeta, int64_t rows,
                       int64_t hidden) {
    const size_t bytes = lightseq::layer_norm_bwd_workspace_bytes(CudaDType<T>::value, rows,
                                                                  static_cast<int>(hidden));
    Tensor ws;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_UINT8,
                                           TensorShape({static_cast<int64_t>(bytes)}), &ws));
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::layer_norm_bwd(CudaDType<T>::value, Ptr<T>(dy), Ptr<T>(x), Ptr<float>(mean),
                                 Ptr<float>(rstd), Ptr<T>(gamma), MutPtr<T>(dx),
                                 /*dx_add=*/nullptr, MutPtr<T>(dgamma), MutPtr<T>(dbeta),
                                 MutPtr<uint8_t>(&ws), rows, static_cast<int>(hidden),
                                 ctx->eigen_gpu_device().stream()),
        "lightseq::layer_norm_bwd");
  }
};
#endif  // GOOGLE_CUDA

template <typename Device, typename T>
class LayerNormOp : public OpKernel {
 public:
  explicit LayerNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES(ctx, std::isfinite(epsilon_) && epsilon_ > 0.f,
                errors::InvalidArgument("epsilon must be a finite number > 0, got ", epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& gamma = ctx->input(1);
    const Tensor& beta = ctx->input(2);
    int64_t rows, hidden;
    OP_REQUIRES_OK(ctx, CheckLastAxis("x", x, {{"gamma", &gamma}, {"beta", &beta}}, &rows, &hidden));
    Tensor *y, *mean, *rstd;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, LeadingShape(x), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, LeadingShape(x), &rstd));
    if (rows == 0) return;
    LayerNormLaunch<Device, T>::Forward(ctx, x, gamma, beta, y, mean, rstd, rows, hidden,
                                        epsilon_);
  }

 private:
  float epsilon_;
};

template <typename Device, typename T>
class LayerNormGradOp : public OpKernel {
 public:
  explicit LayerNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& mean = ctx->input(2);
    const Tensor& rstd = ctx->input(3);
    const Tensor& gamma = ctx->input(4);
    int64_t rows, hidden;
    OP_REQUIRES_OK(ctx, CheckLastAxis("x", x, {{"gamma", &gamma}}, &rows, &hidden));
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                errors::InvalidArgument("dy must have the shape of x ", ShapeStr(x.shape()),
                                        ", got ", ShapeStr(dy.shape())));
    const TensorShape lead = LeadingShape(x);
    OP_REQUIRES(ctx, mean.shape() == lead && rstd.shape() == lead,
                errors::InvalidArgument("mean and rstd must have shape x.shape[:-1] = ",
                                        ShapeStr(lead), ", got ", ShapeStr(mean.shape()),
                                        " and ", ShapeStr(rstd.shape())));
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, gamma.shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, gamma.shape(), &dbeta));
    LayerNormLaunch<Device, T>::Backward(ctx, dy, x, mean, rstd, gamma, dx, dgamma, dbeta,
                                         rows, hidden);
  }
};

#define LIGHTSEQ_REGISTER(DEV, DEVICE, T)                                             \
  REGISTER_KERNEL_BUILDER(                                                            \
      Name("LightseqLayerNorm").Device(tensorflow::DEV).TypeConstraint<T>("T"),       \
      LayerNormOp<DEVICE, T>);                                                        \
  REGISTER_KERNEL_BUILDER(                                                            \
      Name("LightseqLayerNormGrad").Device(tensorflow::DEV).TypeConstraint<T>("T"),   \
      LayerNormGradOp<DEVICE, T>);

LIGHTSEQ_FOR_DEVICES_AND_TYPES(LIGHTSEQ_REGISTER)
#undef LIGHTSEQ_REGISTER

}  // namespace lightseq_tf
