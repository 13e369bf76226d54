// OpKernels for LightseqDecoderLayer / LightseqDecoderLayerGrad: validate,
// allocate `saved` (an output) and the workspace (a temporary) through TF,
// then run the CPU twin or cuda/layers/decoder_layer.cc on TF's stream and BLAS.
#define EIGEN_USE_THREADS
#include "cc/kernels/cpu/decoder_layer_cpu.h"
#include "cc/kernels/layer_op_common.h"
#include "cc/kernels/tf_glue.h"
#include "lightseq/decoder_layer_layout.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/decoder_layer.h"
#endif

namespace lightseq_tf {

namespace {

constexpr const char* kParamNames[20] = {
    "ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias",   "out_kernel",       "out_bias",
    "ln2_gamma", "ln2_beta", "q_kernel",   "q_bias",     "kv_kernel",        "kv_bias",
    "cross_out_kernel", "cross_out_bias",  "ln3_gamma",  "ln3_beta",         "ffn1_kernel",
    "ffn1_bias", "ffn2_kernel", "ffn2_bias"};

// x [B, L, H], memory [B, S, H], mem_lengths [B] and the twenty parameters
// from input `first`; fills the config's shape fields.
absl::Status CheckInputs(OpKernelContext* ctx, int x_index, int first, bool check_lengths,
                         lightseq::DecoderLayerConfig* c) {
  const Tensor& x = ctx->input(x_index);
  const Tensor& memory = ctx->input(x_index + 1);
  TF_RETURN_IF_ERROR(CheckLayerInput(x, c->heads));
  if (memory.dims() != 3 || memory.dim_size(0) != x.dim_size(0) ||
      memory.dim_size(2) != x.dim_size(2))
    return errors::InvalidArgument("memory must have shape [", x.dim_size(0),
                                   ", memory_length, ", x.dim_size(2),
                                   "] (x's batch and hidden), got ", ShapeStr(memory.shape()));
  c->batch = x.dim_size(0);
  c->tgt_len = x.dim_size(1);
  c->mem_len = memory.dim_size(1);
  c->hidden = x.dim_size(2);
  TF_RETURN_IF_ERROR(ReadFfnWidth(ctx->input(first + 16), &c->ffn));
  const int64_t H = c->hidden, F = c->ffn;
  const TensorShape h({H}), hh({H, H});
  const TensorShape want[20] = {h, h, TensorShape({H, 3 * H}), TensorShape({3 * H}), hh, h,
                                h, h, hh, h, TensorShape({H, 2 * H}), TensorShape({2 * H}), hh, h,
                                h, h, TensorShape({H, F}), TensorShape({F}), TensorShape({F, H}),
                                h};
  TF_RETURN_IF_ERROR(CheckParamShapes(ctx, first, kParamNames, want, H, F));
  return CheckLengths(ctx->input(x_index + 2), "mem_lengths", c->batch, c->mem_len,
                      "memory's length", check_lengths);
}

template <typename T>
lightseq::DecoderLayerParams Params(OpKernelContext* ctx, int first) {
  auto p = [&](int i) { return const_cast<T*>(Ptr<T>(ctx->input(first + i))); };
  return {p(0),  p(1),  p(2),  p(3),  p(4),  p(5),  p(6),  p(7),  p(8),  p(9),
          p(10), p(11), p(12), p(13), p(14), p(15), p(16), p(17), p(18), p(19)};
}

template <typename Device, typename T>
struct DecoderLaunch;

template <typename T>
struct DecoderLaunch<CPUDevice, T> {
  static constexpr bool kCheckLengths = true;
  static size_t WorkspaceBytes(const lightseq::DecoderLayerConfig& c) {
    return DecoderLayerCpuWorkspaceBytes(sizeof(T), c);
  }
  static void Forward(OpKernelContext* ctx, const lightseq::DecoderLayerConfig& c,
                      const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                      const int32_t* lengths, T* y, uint64_t seed, void* saved, void* ws) {
    DecoderLayerForwardCpu<T>(CpuPool(ctx), c, w, x, memory, lengths, y, seed, saved, ws);
  }
  static void Backward(OpKernelContext* ctx, const lightseq::DecoderLayerConfig& c,
                       const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                       const int32_t* lengths, const T* dy, T* dx, T* dmemory,
                       const lightseq::DecoderLayerParams& g, uint64_t seed, const void* saved,
                       void* ws) {
    DecoderLayerBackwardCpu<T>(CpuPool(ctx), c, w, x, memory, lengths, dy, dx, dmemory, g, seed,
                               saved, ws);
  }
};

#if GOOGLE_CUDA
// mem_lengths stay on the device (no sync to check them): the softmax clamps
// them to [0, S], which never reads out of bounds.
template <typename T>
struct DecoderLaunch<GPUDevice, T> {
  static constexpr bool kCheckLengths = false;
  static size_t WorkspaceBytes(const lightseq::DecoderLayerConfig& c) {
    return lightseq::decoder_layer_workspace_bytes(CudaDType<T>::value, c);
  }
  static void Forward(OpKernelContext* ctx, const lightseq::DecoderLayerConfig& c,
                      const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                      const int32_t* lengths, T* y, uint64_t seed, void* saved, void* ws) {
    RunLayerOnGpu(ctx, "lightseq::decoder_layer_fwd", [&](const auto& gemm, cudaStream_t s) {
      return lightseq::decoder_layer_fwd(CudaDType<T>::value, c, w, x, memory, lengths, y, seed,
                                         saved, ws, gemm, s);
    });
  }
  static void Backward(OpKernelContext* ctx, const lightseq::DecoderLayerConfig& c,
                       const lightseq::DecoderLayerParams& w, const T* x, const T* memory,
                       const int32_t* lengths, const T* dy, T* dx, T* dmemory,
                       const lightseq::DecoderLayerParams& g, uint64_t seed, const void* saved,
                       void* ws) {
    RunLayerOnGpu(ctx, "lightseq::decoder_layer_bwd", [&](const auto& gemm, cudaStream_t s) {
      return lightseq::decoder_layer_bwd(CudaDType<T>::value, c, w, x, memory, lengths, dy, dx,
                                         dmemory, g, seed, saved, ws, gemm, s);
    });
  }
};
#endif  // GOOGLE_CUDA

}  // namespace

using DecoderLayerAttrs = LayerAttrs<lightseq::DecoderLayerConfig>;

template <typename Device, typename T>
class DecoderLayerOp : public OpKernel, DecoderLayerAttrs {
 public:
  explicit DecoderLayerOp(OpKernelConstruction* ctx) : OpKernel(ctx), DecoderLayerAttrs(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    using Launch = DecoderLaunch<Device, T>;
    lightseq::DecoderLayerConfig c = c_;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, 0, 4, Launch::kCheckLengths, &c));
    uint64_t seed;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(3), &seed));
    const Tensor& x = ctx->input(0);
    const Tensor& memory = ctx->input(1);
    Tensor *y, *saved;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    // An empty memory leaves nothing to attend to: the op takes none.
    OP_REQUIRES(ctx, x.NumElements() == 0 || c.mem_len > 0,
                errors::InvalidArgument("memory must have at least one position, got ",
                                        ShapeStr(memory.shape())));
    const bool empty = x.NumElements() == 0;
    const int64_t saved_bytes =
        empty ? 0 : lightseq::decoder_layer_saved_bytes(CudaDType<T>::value, c);
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({saved_bytes}), &saved));
    if (empty) return;
    Tensor ws;
    OP_REQUIRES_OK(ctx, AllocateWorkspace(ctx, Launch::WorkspaceBytes(c), &ws));
    Launch::Forward(ctx, c, Params<T>(ctx, 4), Ptr<T>(x), Ptr<T>(memory),
                    Ptr<int32_t>(ctx->input(2)), MutPtr<T>(y), seed, MutPtr<uint8_t>(saved),
                    MutPtr<uint8_t>(&ws));
  }
};

template <typename Device, typename T>
class DecoderLayerGradOp : public OpKernel, DecoderLayerAttrs {
 public:
  explicit DecoderLayerGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), DecoderLayerAttrs(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    using Launch = DecoderLaunch<Device, T>;
    lightseq::DecoderLayerConfig c = c_;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, 1, 5, Launch::kCheckLengths, &c));
    uint64_t seed;
    OP_REQUIRES_OK(ctx, ReadSeed(ctx->input(4), &seed));
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& memory = ctx->input(2);
    OP_REQUIRES_OK(ctx, CheckDy(dy, x));
    const bool empty = x.NumElements() == 0 || c.mem_len == 0;
    const int64_t saved_bytes =
        empty ? 0 : lightseq::decoder_layer_saved_bytes(CudaDType<T>::value, c);
    OP_REQUIRES_OK(ctx, CheckSaved(ctx->input(25), saved_bytes));
    Tensor *dx, *dmemory;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, memory.shape(), &dmemory));
    Tensor* grads[20];
    for (int i = 0; i < 20; ++i)
      OP_REQUIRES_OK(ctx, ctx->allocate_output(2 + i, ctx->input(5 + i).shape(), &grads[i]));
    if (empty) {  // no tokens: every gradient is zero
      ZeroTensor<Device>(ctx, dmemory);
      for (Tensor* g : grads) ZeroTensor<Device>(ctx, g);
      return;
    }
    Tensor ws;
    OP_REQUIRES_OK(ctx, AllocateWorkspace(ctx, Launch::WorkspaceBytes(c), &ws));
    auto m = [&](int i) { return MutPtr<T>(grads[i]); };
    const lightseq::DecoderLayerParams g = {m(0),  m(1),  m(2),  m(3),  m(4),  m(5),  m(6),
                                            m(7),  m(8),  m(9),  m(10), m(11), m(12), m(13),
                                            m(14), m(15), m(16), m(17), m(18), m(19)};
    Launch::Backward(ctx, c, Params<T>(ctx, 5), Ptr<T>(x), Ptr<T>(memory),
                     Ptr<int32_t>(ctx->input(3)), Ptr<T>(dy), MutPtr<T>(dx), MutPtr<T>(dmemory),
                     g, seed, Ptr<uint8_t>(ctx->input(25)), MutPtr<uint8_t>(&ws));
  }
};

#define LIGHTSEQ_REGISTER(DEV, DEVICE, T, HOST)                                              \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("LightseqDecoderLayer").Device(tensorflow::DEV).TypeConstraint<T>("T") HOST,      \
      DecoderLayerOp<DEVICE, T>);                                                            \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("LightseqDecoderLayerGrad").Device(tensorflow::DEV).TypeConstraint<T>("T") HOST,  \
      DecoderLayerGradOp<DEVICE, T>);
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
