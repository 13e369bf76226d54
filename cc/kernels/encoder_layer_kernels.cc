// OpKernels for LightseqEncoderLayer / LightseqEncoderLayerGrad: validate,
// allocate `saved` (an output) and the workspace (a temporary) through TF,
// then run the CPU twin or cuda/layers/encoder_layer.cc on TF's stream and BLAS.
#define EIGEN_USE_THREADS
#include "cc/kernels/cpu/encoder_layer_cpu.h"
#include "cc/kernels/layer_op_common.h"
#include "cc/kernels/tf_glue.h"
#include "lightseq/encoder_layer_layout.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/encoder_layer.h"
#endif

namespace lightseq_tf {

namespace {

constexpr const char* kParamNames[12] = {
    "ln1_gamma", "ln1_beta",  "qkv_kernel",  "qkv_bias",  "out_kernel",  "out_bias",
    "ln2_gamma", "ln2_beta",  "ffn1_kernel", "ffn1_bias", "ffn2_kernel", "ffn2_bias"};

// x [B, L, H], lengths [B] and the twelve parameters from input `first`;
// fills the config's shape fields.
absl::Status CheckInputs(OpKernelContext* ctx, int x_index, int first, bool check_lengths,
                         lightseq::EncoderLayerConfig* c) {
  const Tensor& x = ctx->input(x_index);
  const Tensor& lengths = ctx->input(x_index + 1);
  TF_RETURN_IF_ERROR(CheckLayerInput(x, c->heads));
  c->batch = x.dim_size(0);
  c->seq_len = x.dim_size(1);
  c->hidden = x.dim_size(2);
  TF_RETURN_IF_ERROR(ReadFfnWidth(ctx->input(first + 8), &c->ffn));
  const int64_t H = c->hidden, F = c->ffn;
  const TensorShape want[12] = {
      TensorShape({H}),    TensorShape({H}), TensorShape({H, 3 * H}), TensorShape({3 * H}),
      TensorShape({H, H}), TensorShape({H}), TensorShape({H}),        TensorShape({H}),
      TensorShape({H, F}), TensorShape({F}), TensorShape({F, H}),     TensorShape({H})};
  TF_RETURN_IF_ERROR(CheckParamShapes(ctx, first, kParamNames, want, H, F));
  return CheckLengths(lengths, "lengths", c->batch, c->seq_len, "x's length", check_lengths);
}

template <typename T>
lightseq::EncoderLayerParams Params(OpKernelContext* ctx, int first) {
  auto p = [&](int i) { return const_cast<T*>(Ptr<T>(ctx->input(first + i))); };
  return {p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11)};
}

template <typename Device, typename T>
struct EncoderLaunch;

template <typename T>
struct EncoderLaunch<CPUDevice, T> {
  static constexpr bool kCheckLengths = true;
  static size_t WorkspaceBytes(const lightseq::EncoderLayerConfig& c) {
    return EncoderLayerCpuWorkspaceBytes(sizeof(T), c);
  }
  static void Forward(OpKernelContext* ctx, const lightseq::EncoderLayerConfig& c,
                      const lightseq::EncoderLayerParams& w, const T* x, const int32_t* lengths,
                      T* y, uint64_t seed, void* saved, void* ws) {
    EncoderLayerForwardCpu<T>(CpuPool(ctx), c, w, x, lengths, y, seed, saved, ws);
  }
  static void Backward(OpKernelContext* ctx, const lightseq::EncoderLayerConfig& c,
                       const lightseq::EncoderLayerParams& w, const T* x,
                       const int32_t* lengths, const T* dy, T* dx,
                       const lightseq::EncoderLayerParams& g, uint64_t seed, const void* saved,
                       void* ws) {
    EncoderLayerBackwardCpu<T>(CpuPool(ctx), c, w, x, lengths, dy, dx, g, seed, saved, ws);
  }
};

#if GOOGLE_CUDA
// Lengths stay on the device (no sync to check them): the softmax clamps them
// to [0, L], which never reads out of bounds.
template <typename T>
struct EncoderLaunch<GPUDevice, T> {
  static constexpr bool kCheckLengths = false;
  static size_t WorkspaceBytes(const lightseq::EncoderLayerConfig& c) {
    return lightseq::encoder_layer_workspace_bytes(CudaDType<T>::value, c);
  }
  static void Forward(OpKernelContext* ctx, const lightseq::EncoderLayerConfig& c,
                      const lightseq::EncoderLayerParams& w, const T* x, const int32_t* lengths,
                      T* y, uint64_t seed, void* saved, void* ws) {
    RunLayerOnGpu(ctx, "lightseq::encoder_layer_fwd", [&](const auto& gemm, cudaStream_t s) {
      return lightseq::encoder_layer_fwd(CudaDType<T>::value, c, w, x, lengths, y, seed, saved,
                                         ws, gemm, s);
    });
  }
  static void Backward(OpKernelContext* ctx, const lightseq::EncoderLayerConfig& c,
                       const lightseq::EncoderLayerParams& w, const T* x,
                       const int32_t* lengths, const T* dy, T* dx,
                       const lightseq::EncoderLayerParams& g, uint64_t seed, const void* saved,
                       void* ws) {
    RunLayerOnGpu(ctx, "lightseq::encoder_layer_bwd", [&](const auto& gemm, cudaStream_t s) {
      return lightseq::encoder_layer_bwd(CudaDType<T>::value, c, w, x, lengths, dy, dx, g, seed,
                                         saved, ws, gemm, s);
    });
  }
};
#endif  // GOOGLE_CUDA

}  // namespace

using EncoderLayerAttrs = LayerAttrs<lightseq::EncoderLayerConfig>;

template <typename Device, typename T>
class EncoderLayerOp : public OpKernel, EncoderLayerAttrs {
 public:
  explicit EncoderLayerOp(OpKernelConstruction* ctx) : OpKernel(ctx), EncoderLayerAttrs(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    using Launch = EncoderLaunch<Device, T>;
    lightseq::EncoderLayerConfig c = c_;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, 0, 3, Launch::kCheckLengths, &c));
    uint64_t seed;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(2), &seed));
    const Tensor& x = ctx->input(0);
    Tensor *y, *saved;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const bool empty = x.NumElements() == 0;
    const int64_t saved_bytes =
        empty ? 0 : lightseq::encoder_layer_saved_bytes(CudaDType<T>::value, c);
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({saved_bytes}), &saved));
    if (empty) return;
    Tensor ws;
    OP_REQUIRES_OK(ctx, AllocateWorkspace(ctx, Launch::WorkspaceBytes(c), &ws));
    Launch::Forward(ctx, c, Params<T>(ctx, 3), Ptr<T>(x), Ptr<int32_t>(ctx->input(1)),
                    MutPtr<T>(y), seed, MutPtr<uint8_t>(saved), MutPtr<uint8_t>(&ws));
  }
};

template <typename Device, typename T>
class EncoderLayerGradOp : public OpKernel, EncoderLayerAttrs {
 public:
  explicit EncoderLayerGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), EncoderLayerAttrs(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    using Launch = EncoderLaunch<Device, T>;
    lightseq::EncoderLayerConfig c = c_;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, 1, 4, Launch::kCheckLengths, &c));
    uint64_t seed;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(3), &seed));
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& saved = ctx->input(16);
    OP_REQUIRES_OK(ctx, CheckDy(dy, x));
    const bool empty = x.NumElements() == 0;
    const int64_t saved_bytes =
        empty ? 0 : lightseq::encoder_layer_saved_bytes(CudaDType<T>::value, c);
    OP_REQUIRES_OK(ctx, CheckSaved(saved, saved_bytes));
    Tensor* dx;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    Tensor* grads[12];
    for (int i = 0; i < 12; ++i)
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1 + i, ctx->input(4 + i).shape(), &grads[i]));
    if (empty) {  // no tokens: every parameter gradient is zero
      for (Tensor* g : grads) ZeroTensor<Device>(ctx, g);
      return;
    }
    Tensor ws;
    OP_REQUIRES_OK(ctx, AllocateWorkspace(ctx, Launch::WorkspaceBytes(c), &ws));
    const lightseq::EncoderLayerParams g = {
        MutPtr<T>(grads[0]), MutPtr<T>(grads[1]), MutPtr<T>(grads[2]),  MutPtr<T>(grads[3]),
        MutPtr<T>(grads[4]), MutPtr<T>(grads[5]), MutPtr<T>(grads[6]),  MutPtr<T>(grads[7]),
        MutPtr<T>(grads[8]), MutPtr<T>(grads[9]), MutPtr<T>(grads[10]), MutPtr<T>(grads[11])};
    Launch::Backward(ctx, c, Params<T>(ctx, 4), Ptr<T>(x), Ptr<int32_t>(ctx->input(2)),
                     Ptr<T>(dy), MutPtr<T>(dx), g, seed, Ptr<uint8_t>(saved),
                     MutPtr<uint8_t>(&ws));
  }
};

#define LIGHTSEQ_REGISTER(DEV, DEVICE, T, HOST)                                              \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("LightseqEncoderLayer").Device(tensorflow::DEV).TypeConstraint<T>("T") HOST,      \
      EncoderLayerOp<DEVICE, T>);                                                            \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("LightseqEncoderLayerGrad").Device(tensorflow::DEV).TypeConstraint<T>("T") HOST,  \
      EncoderLayerGradOp<DEVICE, T>);
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
