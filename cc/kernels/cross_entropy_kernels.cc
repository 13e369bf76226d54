// OpKernels for LightseqCrossEntropy / LightseqCrossEntropyGrad.
#define EIGEN_USE_THREADS
#include "cc/kernels/cpu/cross_entropy_cpu.h"
#include "cc/kernels/tf_glue.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/cross_entropy.h"
#endif

namespace lightseq_tf {

namespace {

// logits: [..., V] with targets: logits.shape[:-1]; V >= 1 (>= 2 when smoothing).
absl::Status CheckShapes(const Tensor& logits, const Tensor& targets, float eps, int64_t* rows,
                         int64_t* vocab) {
  if (logits.dims() < 1)
    return errors::InvalidArgument("logits must have rank >= 1 ([..., vocab]), got a scalar");
  *vocab = logits.dim_size(logits.dims() - 1);
  TensorShape lead = logits.shape();
  lead.RemoveLastDims(1);
  if (targets.shape() != lead)
    return errors::InvalidArgument("targets must have shape logits.shape[:-1] = ", ShapeStr(lead),
                                   ", got ", ShapeStr(targets.shape()));
  if (*vocab < 1 || (eps > 0.f && *vocab < 2))
    return errors::InvalidArgument("vocab size (last dimension of logits) must be >= ",
                                   eps > 0.f ? 2 : 1, eps > 0.f ? " with label smoothing" : "",
                                   ", got ", *vocab);
  *rows = lead.num_elements();
  if (*rows >= (int64_t{1} << 31))
    return errors::InvalidArgument("at most 2^31 - 1 tokens per call, got ", *rows);
  return absl::OkStatus();
}

// Every target is a class index or padding_id. Only the CPU kernels check
// (the GPU kernels cannot without a device-to-host sync; they turn such rows
// into NaN instead and never read out of bounds).
template <typename I>
absl::Status CheckTargets(const Tensor& targets, int64_t rows, int64_t vocab, int64_t pad) {
  const I* t = Ptr<I>(targets);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t v = static_cast<int64_t>(t[r]);
    if (v != pad && (v < 0 || v >= vocab))
      return errors::InvalidArgument("targets[", r, "] = ", v, " is outside [0, ", vocab,
                                     ") and is not padding_id (", pad, ")");
  }
  return absl::OkStatus();
}

}  // namespace

class CrossEntropyAttrs {
 protected:
  explicit CrossEntropyAttrs(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &eps_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding_id", &pad_));
    OP_REQUIRES(ctx, eps_ >= 0.f && eps_ < 1.f,
                errors::InvalidArgument("epsilon (label smoothing) must be in [0, 1), got ", eps_));
  }
  float eps_;
  int64_t pad_;
};

template <typename Device, typename T, typename I>
struct CrossEntropyLaunch;

template <typename T, typename I>
struct CrossEntropyLaunch<CPUDevice, T, I> {
  static void Forward(OpKernelContext* ctx, const Tensor& logits, const Tensor& targets,
                      Tensor* loss, Tensor* nll, Tensor* lse, Tensor* sums, int64_t rows,
                      int64_t vocab, float eps, int64_t pad) {
    OP_REQUIRES_OK(ctx, CheckTargets<I>(targets, rows, vocab, pad));
    CrossEntropyForwardCpu<T, I>(CpuPool(ctx),
                                 Ptr<T>(logits), Ptr<I>(targets), MutPtr<float>(loss), MutPtr<float>(nll),
                                 MutPtr<float>(lse), MutPtr<float>(sums), rows, vocab, eps, pad);
  }
  static void Backward(OpKernelContext* ctx, const Tensor& dloss, const Tensor& dnll,
                       const Tensor& logits, const Tensor& targets, const Tensor& lse,
                       const Tensor& nll, Tensor* dlogits, int64_t rows, int64_t vocab, float eps,
                       int64_t pad) {
    OP_REQUIRES_OK(ctx, CheckTargets<I>(targets, rows, vocab, pad));
    CrossEntropyBackwardCpu<T, I>(CpuPool(ctx),
                                  Ptr<float>(dloss), Ptr<float>(dnll), Ptr<T>(logits),
                                  Ptr<I>(targets),
                                  Ptr<float>(lse), Ptr<float>(nll), MutPtr<T>(dlogits), rows,
                                  vocab, eps, pad);
  }
};

#if GOOGLE_CUDA

template <typename T, typename I>
struct CrossEntropyLaunch<GPUDevice, T, I> {
  static constexpr bool kI64 = sizeof(I) == 8;
  static void Forward(OpKernelContext* ctx, const Tensor& logits, const Tensor& targets,
                      Tensor* loss, Tensor* nll, Tensor* lse, Tensor* sums, int64_t rows,
                      int64_t vocab, float eps, int64_t pad) {
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::cross_entropy_fwd(CudaDType<T>::value, Ptr<T>(logits), Ptr<I>(targets), kI64,
                                    MutPtr<float>(loss), MutPtr<float>(nll), MutPtr<float>(lse),
                                    MutPtr<float>(sums), rows, vocab, eps, pad,
                                    ctx->eigen_gpu_device().stream()),
        "lightseq::cross_entropy_fwd");
  }
  static void Backward(OpKernelContext* ctx, const Tensor& dloss, const Tensor& dnll,
                       const Tensor& logits, const Tensor& targets, const Tensor& lse,
                       const Tensor& nll, Tensor* dlogits, int64_t rows, int64_t vocab, float eps,
                       int64_t pad) {
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::cross_entropy_bwd(CudaDType<T>::value, Ptr<float>(dloss), Ptr<float>(dnll),
                                    Ptr<T>(logits), Ptr<I>(targets), kI64, Ptr<float>(lse),
                                    Ptr<float>(nll), MutPtr<T>(dlogits), rows, vocab, eps, pad,
                                    ctx->eigen_gpu_device().stream()),
        "lightseq::cross_entropy_bwd");
  }
};
#endif  // GOOGLE_CUDA

template <typename Device, typename T, typename I>
class CrossEntropyOp : public OpKernel, CrossEntropyAttrs {
 public:
  explicit CrossEntropyOp(OpKernelConstruction* ctx) : OpKernel(ctx), CrossEntropyAttrs(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& logits = ctx->input(0);
    const Tensor& targets = ctx->input(1);
    int64_t rows, vocab;
    OP_REQUIRES_OK(ctx, CheckShapes(logits, targets, eps_, &rows, &vocab));
    Tensor *loss, *nll, *lse, *sums;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, targets.shape(), &loss));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, targets.shape(), &nll));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, targets.shape(), &lse));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({3}), &sums));
    CrossEntropyLaunch<Device, T, I>::Forward(ctx, logits, targets, loss, nll, lse, sums, rows,
                                              vocab, eps_, pad_);
  }
};

template <typename Device, typename T, typename I>
class CrossEntropyGradOp : public OpKernel, CrossEntropyAttrs {
 public:
  explicit CrossEntropyGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), CrossEntropyAttrs(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dloss = ctx->input(0);
    const Tensor& dnll = ctx->input(1);
    const Tensor& logits = ctx->input(2);
    const Tensor& targets = ctx->input(3);
    const Tensor& lse = ctx->input(4);
    const Tensor& nll = ctx->input(5);
    int64_t rows, vocab;
    OP_REQUIRES_OK(ctx, CheckShapes(logits, targets, eps_, &rows, &vocab));
    for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"dloss", &dloss},
                                  {"dnll", &dnll}, {"lse", &lse}, {"nll", &nll}}) {
      OP_REQUIRES(ctx, t->shape() == targets.shape(),
                  errors::InvalidArgument(name, " must have the shape of targets ",
                                          ShapeStr(targets.shape()), ", got ",
                                          ShapeStr(t->shape())));
    }
    Tensor* dlogits;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, logits.shape(), &dlogits));
    CrossEntropyLaunch<Device, T, I>::Backward(ctx, dloss, dnll, logits, targets, lse, nll,
                                               dlogits, rows, vocab, eps_, pad_);
  }
};

#define LIGHTSEQ_REGISTER(DEV, DEVICE, T, I)                                             \
  REGISTER_KERNEL_BUILDER(Name("LightseqCrossEntropy")                                   \
                              .Device(tensorflow::DEV)                                   \
                              .TypeConstraint<T>("T")                                    \
                              .TypeConstraint<I>("Tidx"),                                \
                          CrossEntropyOp<DEVICE, T, I>);                                 \
  REGISTER_KERNEL_BUILDER(Name("LightseqCrossEntropyGrad")                               \
                              .Device(tensorflow::DEV)                                   \
                              .TypeConstraint<T>("T")                                    \
                              .TypeConstraint<I>("Tidx"),                                \
                          CrossEntropyGradOp<DEVICE, T, I>);
#define LIGHTSEQ_REGISTER_T(DEV, DEVICE, T) \
  LIGHTSEQ_REGISTER(DEV, DEVICE, T, int32_t) LIGHTSEQ_REGISTER(DEV, DEVICE, T, int64_t)

LIGHTSEQ_FOR_DEVICES_AND_TYPES(LIGHTSEQ_REGISTER_T)
#undef LIGHTSEQ_REGISTER_T
#undef LIGHTSEQ_REGISTER

}  // namespace lightseq_tf
