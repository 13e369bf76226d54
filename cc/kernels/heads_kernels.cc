// OpKernels for LightseqSplitHeads / LightseqMergeHeads.
#define EIGEN_USE_THREADS
#include "cc/kernels/cpu/heads_cpu.h"
#include "cc/kernels/tf_glue.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/heads.h"
#endif

namespace lightseq_tf {

template <typename Device, typename T>
struct HeadsLaunch;

template <typename T>
struct HeadsLaunch<CPUDevice, T> {
  static void Split(OpKernelContext* ctx, const Tensor& x, const Tensor& bias, Tensor* out,
                    lightseq::HeadsShape s) {
    SplitHeadsCpu<T>(CpuPool(ctx), Ptr<T>(x),
                     Ptr<T>(bias), MutPtr<T>(out), s);
  }
  static void Merge(OpKernelContext* ctx, const Tensor& x, Tensor* out, lightseq::HeadsShape s) {
    MergeHeadsCpu<T>(CpuPool(ctx), Ptr<T>(x),
                     MutPtr<T>(out), s);
  }
};

#if GOOGLE_CUDA

template <typename T>
struct HeadsLaunch<GPUDevice, T> {
  static void Split(OpKernelContext* ctx, const Tensor& x, const Tensor& bias, Tensor* out,
                    lightseq::HeadsShape s) {
    LIGHTSEQ_OP_REQUIRES_CUDA(ctx,
                              lightseq::split_heads(CudaDType<T>::value, Ptr<T>(x), Ptr<T>(bias),
                                                    MutPtr<T>(out), s,
                                                    ctx->eigen_gpu_device().stream()),
                              "lightseq::split_heads");
  }
  static void Merge(OpKernelContext* ctx, const Tensor& x, Tensor* out, lightseq::HeadsShape s) {
    LIGHTSEQ_OP_REQUIRES_CUDA(ctx,
                              lightseq::merge_heads(CudaDType<T>::value, Ptr<T>(x), MutPtr<T>(out),
                                                    s, ctx->eigen_gpu_device().stream()),
                              "lightseq::merge_heads");
  }
};
#endif  // GOOGLE_CUDA

template <typename Device, typename T>
class SplitHeadsOp : public OpKernel {
 public:
  explicit SplitHeadsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("heads", &heads_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("splits", &splits_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& bias = ctx->input(1);
    OP_REQUIRES(ctx, x.dims() == 3,
                errors::InvalidArgument("x must have rank 3 [batch, len, splits*heads*head_dim], got ",
                                        ShapeStr(x.shape())));
    const int64_t width = x.dim_size(2);
    OP_REQUIRES(ctx, width % (heads_ * splits_) == 0,
                errors::InvalidArgument("last dimension of x (", width,
                                        ") must be divisible by splits * heads = ",
                                        splits_ * heads_));
    OP_REQUIRES(ctx, bias.dims() == 1 && bias.dim_size(0) == width,
                errors::InvalidArgument("bias must have shape [", width,
                                        "] (the last dimension of x), got ", ShapeStr(bias.shape())));
    const lightseq::HeadsShape s{splits_, x.dim_size(0), x.dim_size(1), heads_,
                                 width / (heads_ * splits_)};
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({s.splits, s.batch, s.heads, s.len, s.head_dim}), &out));
    if (x.NumElements() == 0) return;
    HeadsLaunch<Device, T>::Split(ctx, x, bias, out, s);
  }

 private:
  int64_t heads_, splits_;
};

template <typename Device, typename T>
class MergeHeadsOp : public OpKernel {
 public:
  explicit MergeHeadsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES(ctx, x.dims() == 5,
                errors::InvalidArgument("x must have rank 5 [splits, batch, heads, len, head_dim], got ",
                                        ShapeStr(x.shape())));
    const lightseq::HeadsShape s{x.dim_size(0), x.dim_size(1), x.dim_size(3), x.dim_size(2),
                                 x.dim_size(4)};
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({s.batch, s.len, s.splits * s.heads * s.head_dim}), &out));
    if (x.NumElements() == 0) return;
    HeadsLaunch<Device, T>::Merge(ctx, x, out, s);
  }
};

#define LIGHTSEQ_REGISTER(DEV, DEVICE, T)                                                     \
  REGISTER_KERNEL_BUILDER(Name("LightseqSplitHeads").Device(tensorflow::DEV).TypeConstraint<T>("T"), \
                          SplitHeadsOp<DEVICE, T>);                                           \
  REGISTER_KERNEL_BUILDER(Name("LightseqMergeHeads").Device(tensorflow::DEV).TypeConstraint<T>("T"), \
                          MergeHeadsOp<DEVICE, T>);
LIGHTSEQ_FOR_DEVICES_AND_TYPES(LIGHTSEQ_REGISTER)
#undef LIGHTSEQ_REGISTER

}  // namespace lightseq_tf
