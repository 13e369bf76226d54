// OpKernels for LightseqAttnSoftmax / LightseqAttnSoftmaxGrad.
#define EIGEN_USE_THREADS
#include <cmath>

#include "cc/kernels/cpu/softmax_cpu.h"
#include "cc/kernels/tf_glue.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/softmax.h"
#endif

namespace lightseq_tf {

namespace {

// scores [B, heads, Lq, Lk] with lengths [B]; on the CPU every length must
// lie in [0, Lk] (the GPU kernels clamp instead: they cannot report without a
// device-to-host sync, and clamping never reads out of bounds).
absl::Status CheckSoftmax(const Tensor& scores, const Tensor& lengths, bool check_values,
                          lightseq::SoftmaxShape* s) {
  if (scores.dims() != 4)
    return errors::InvalidArgument("scores must have rank 4 [batch, heads, q_len, k_len], got ",
                                   ShapeStr(scores.shape()));
  *s = {scores.dim_size(0), scores.dim_size(1), scores.dim_size(2), scores.dim_size(3)};
  if (lengths.dims() != 1 || lengths.dim_size(0) != s->batch)
    return errors::InvalidArgument("lengths must have shape [", s->batch, "] (batch), got ",
                                   ShapeStr(lengths.shape()));
  if (check_values) {
    const int32_t* l = Ptr<int32_t>(lengths);
    for (int64_t b = 0; b < s->batch; ++b)
      if (l[b] < 0 || l[b] > s->k_len)
        return errors::InvalidArgument("lengths[", b, "] = ", l[b], " is outside [0, ", s->k_len,
                                       "] (k_len)");
  }
  return absl::OkStatus();
}

}  // namespace

class SoftmaxAttrs {
 protected:
  explicit SoftmaxAttrs(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("causal", &causal_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &rate_));
    OP_REQUIRES_OK(ctx, CheckDropoutRate(rate_));
    OP_REQUIRES(ctx, std::isfinite(scale_),
                errors::InvalidArgument("scale must be finite, got ", scale_));
  }
  float scale_, rate_;
  bool causal_;
};

template <typename Device, typename T>
struct SoftmaxLaunch;

template <typename T>
struct SoftmaxLaunch<CPUDevice, T> {
  static constexpr bool kCheckLengths = true;
  static void Forward(OpKernelContext* ctx, const Tensor& scores, const Tensor& lengths,
                      Tensor* probs, lightseq::SoftmaxShape s, float scale, bool causal,
                      uint64_t seed, float rate) {
    AttnSoftmaxForwardCpu<T>(CpuPool(ctx),
                             Ptr<T>(scores), Ptr<int32_t>(lengths), MutPtr<T>(probs), s, scale,
                             causal, seed, rate);
  }
  static void Backward(OpKernelContext* ctx, const Tensor& dprobs, const Tensor& scores,
                       const Tensor& lengths, Tensor* dscores, lightseq::SoftmaxShape s,
                       float scale, bool causal, uint64_t seed, float rate) {
    AttnSoftmaxBackwardCpu<T>(CpuPool(ctx),
                              Ptr<T>(dprobs), Ptr<T>(scores), Ptr<int32_t>(lengths),
                              MutPtr<T>(dscores), s, scale, causal, seed, rate);
  }
};

#if GOOGLE_CUDA

template <typename T>
struct SoftmaxLaunch<GPUDevice, T> {
  static constexpr bool kCheckLengths = false;
  static void Forward(OpKernelContext* ctx, const Tensor& scores, const Tensor& lengths,
                      Tensor* probs, lightseq::SoftmaxShape s, float scale, bool causal,
                      uint64_t seed, float rate) {
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::attn_softmax_fwd(CudaDType<T>::value, Ptr<T>(scores), Ptr<int32_t>(lengths),
                                   MutPtr<T>(probs), s, scale, causal, seed, rate,
                                   ctx->eigen_gpu_device().stream()),
        "lightseq::attn_softmax_fwd");
  }
  static void Backward(OpKernelContext* ctx, const Tensor& dprobs, const Tensor& scores,
                       const Tensor& lengths, Tensor* dscores, lightseq::SoftmaxShape s,
                       float scale, bool causal, uint64_t seed, float rate) {
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::attn_softmax_bwd(CudaDType<T>::value, Ptr<T>(dprobs), Ptr<T>(scores),
                                   Ptr<int32_t>(lengths), MutPtr<T>(dscores), s, scale, causal,
                                   seed, rate, ctx->eigen_gpu_device().stream()),
        "lightseq::attn_softmax_bwd");
  }
};
#endif  // GOOGLE_CUDA

template <typename Device, typename T>
class AttnSoftmaxOp : public OpKernel, SoftmaxAttrs {
 public:
  explicit AttnSoftmaxOp(OpKernelConstruction* ctx) : OpKernel(ctx), SoftmaxAttrs(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& scores = ctx->input(0);
    const Tensor& lengths = ctx->input(1);
    uint64_t seed;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(2), &seed));
    lightseq::SoftmaxShape s;
    OP_REQUIRES_OK(ctx,
                   CheckSoftmax(scores, lengths, SoftmaxLaunch<Device, T>::kCheckLengths, &s));
    Tensor* probs;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, scores.shape(), &probs));
    if (scores.NumElements() == 0) return;
    SoftmaxLaunch<Device, T>::Forward(ctx, scores, lengths, probs, s, scale_, causal_, seed,
                                      rate_);
  }
};

template <typename Device, typename T>
class AttnSoftmaxGradOp : public OpKernel, SoftmaxAttrs {
 public:
  explicit AttnSoftmaxGradOp(OpKernelConstruction* ctx) : OpKernel(ctx), SoftmaxAttrs(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& dprobs = ctx->input(0);
    const Tensor& scores = ctx->input(1);
    const Tensor& lengths = ctx->input(2);
    uint64_t seed;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(3), &seed));
    lightseq::SoftmaxShape s;
    OP_REQUIRES_OK(ctx,
                   CheckSoftmax(scores, lengths, SoftmaxLaunch<Device, T>::kCheckLengths, &s));
    OP_REQUIRES(ctx, dprobs.shape() == scores.shape(),
                errors::InvalidArgument("dprobs must have the shape of scores ",
                                        ShapeStr(scores.shape()), ", got ",
                                        ShapeStr(dprobs.shape())));
    Tensor* dscores;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, scores.shape(), &dscores));
    if (scores.NumElements() == 0) return;
    SoftmaxLaunch<Device, T>::Backward(ctx, dprobs, scores, lengths, dscores, s, scale_,
                                       causal_, seed, rate_);
  }
};

#define LIGHTSEQ_REGISTER(DEV, DEVICE, T, HOST)                                           \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("LightseqAttnSoftmax").Device(tensorflow::DEV).TypeConstraint<T>("T") HOST,    \
      AttnSoftmaxOp<DEVICE, T>);                                                          \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("LightseqAttnSoftmaxGrad").Device(tensorflow::DEV).TypeConstraint<T>("T") HOST, \
      AttnSoftmaxGradOp<DEVICE, T>);
#define LIGHTSEQ_NO_HOST
LIGHTSEQ_REGISTER(DEVICE_CPU, CPUDevice, float, LIGHTSEQ_NO_HOST)
LIGHTSEQ_REGISTER(DEVICE_CPU, CPUDevice, Eigen::half, LIGHTSEQ_NO_HOST)
LIGHTSEQ_REGISTER(DEVICE_CPU, CPUDevice, Eigen::bfloat16, LIGHTSEQ_NO_HOST)
#if GOOGLE_CUDA
LIGHTSEQ_REGISTER(DEVICE_GPU, GPUDevice, float, .HostMemory("seed"))
LIGHTSEQ_REGISTER(DEVICE_GPU, GPUDevice, Eigen::half, .HostMemory("seed"))
LIGHTSEQ_REGISTER(DEVICE_GPU, GPUDevice, Eigen::bfloat16, .HostMemory("seed"))
#endif
#undef LIGHTSEQ_REGISTER
#undef LIGHTSEQ_NO_HOST

}  // namespace lightseq_tf
