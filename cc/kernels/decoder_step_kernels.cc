// OpKernel for LightseqDecoderStep: validate (every shape and the decoding
// position against the cache, on the host), produce the new caches (the
// input reused in place for the static cache when TF allows, else copied),
// then run the CPU twin or cuda/layers/decoder_step.cc on TF's stream and BLAS.
#define EIGEN_USE_THREADS
#include <cstring>

#include "cc/kernels/cpu/decoder_step_cpu.h"
#include "cc/kernels/layer_op_common.h"
#include "cc/kernels/tf_glue.h"
#include "lightseq/decoder_step_layout.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/decoder_step.h"
#endif

namespace lightseq_tf {

namespace {

constexpr int kFirstParam = 7;
constexpr const char* kParamNames[18] = {
    "ln1_gamma", "ln1_beta",  "qkv_kernel", "qkv_bias",         "out_kernel",
    "out_bias",  "ln2_gamma", "ln2_beta",   "q_kernel",         "q_bias",
    "cross_out_kernel",       "cross_out_bias",  "ln3_gamma",   "ln3_beta",
    "ffn1_kernel", "ffn1_bias", "ffn2_kernel", "ffn2_bias"};

template <typename T>
lightseq::DecoderLayerParams Params(OpKernelContext* ctx) {
  auto p = [&](int i) { return const_cast<T*>(Ptr<T>(ctx->input(kFirstParam + i))); };
  // kv_kernel / kv_bias: the memory comes projected (memory_keys / _values).
  return {p(0), p(1), p(2),  p(3),  p(4),  p(5),  p(6),  p(7),  p(8),  p(9),
          nullptr, nullptr, p(10), p(11), p(12), p(13), p(14), p(15), p(16), p(17)};
}

// A [B, length, heads, head_dim] cache-layout input.
absl::Status CheckHeadsLayout(const Tensor& t, const char* name, int64_t batch, int64_t heads,
                              int64_t head_dim, const char* length_name) {
  if (t.dims() == 4 && t.dim_size(0) == batch && t.dim_size(2) == heads &&
      t.dim_size(3) == head_dim)
    return absl::OkStatus();
  return errors::InvalidArgument(name, " must have shape [", batch, ", ", length_name, ", ",
                                 heads, ", ", head_dim, "] (batch, length, heads, head_dim), got ",
                                 ShapeStr(t.shape()));
}

// Copies `batch` blocks of src_bytes from rows of src_pitch bytes to rows of
// dst_pitch bytes (the old cache rows into the new cache).
template <typename Device>
void CopyRows(OpKernelContext* ctx, const void* src, int64_t src_pitch, void* dst,
              int64_t dst_pitch, int64_t src_bytes, int64_t batch);

template <>
void CopyRows<CPUDevice>(OpKernelContext*, const void* src, int64_t src_pitch, void* dst,
                         int64_t dst_pitch, int64_t src_bytes, int64_t batch) {
  for (int64_t b = 0; b < batch; ++b)
    std::memcpy(static_cast<char*>(dst) + b * dst_pitch,
                static_cast<const char*>(src) + b * src_pitch, src_bytes);
}

template <typename Device, typename T>
struct StepLaunch;

template <typename T>
struct StepLaunch<CPUDevice, T> {
  static constexpr bool kCheckLengths = true;
  static void Run(OpKernelContext* ctx, const lightseq::DecoderStepConfig& c, const T* x,
                  T* keys, T* values, int64_t cache_len, const T* mem_k, const T* mem_v,
                  const int32_t* mem_lengths, T* y, void* ws) {
    DecoderStepCpu<T>(CpuPool(ctx), c, Params<T>(ctx), x, keys, values, cache_len, mem_k, mem_v,
                      mem_lengths, y, ws);
  }
};

#if GOOGLE_CUDA
template <>
void CopyRows<GPUDevice>(OpKernelContext* ctx, const void* src, int64_t src_pitch, void* dst,
                         int64_t dst_pitch, int64_t src_bytes, int64_t batch) {
  if (batch == 0 || src_bytes == 0) return;
  LIGHTSEQ_OP_REQUIRES_CUDA(
      ctx,
      cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, src_bytes, batch,
                        cudaMemcpyDeviceToDevice, ctx->eigen_gpu_device().stream()),
      "cudaMemcpy2DAsync (decoder cache)");
}

// memory_lengths stay on the device (no sync to check them): the attention
// clamps them to [0, S], which never reads out of bounds.
template <typename T>
struct StepLaunch<GPUDevice, T> {
  static constexpr bool kCheckLengths = false;
  static void Run(OpKernelContext* ctx, const lightseq::DecoderStepConfig& c, const T* x,
                  T* keys, T* values, int64_t cache_len, const T* mem_k, const T* mem_v,
                  const int32_t* mem_lengths, T* y, void* ws) {
    RunLayerOnGpu(ctx, "lightseq::decoder_step_fwd", [&](const auto& gemm, cudaStream_t s) {
      return lightseq::decoder_step_fwd(CudaDType<T>::value, c, Params<T>(ctx), x, keys, values,
                                        cache_len, mem_k, mem_v, mem_lengths, y, ws, gemm, s);
    });
  }
};
#endif  // GOOGLE_CUDA

}  // namespace

template <typename Device, typename T>
class DecoderStepOp : public OpKernel {
 public:
  explicit DecoderStepOp(OpKernelConstruction* ctx) : OpKernel(ctx), c_{} {
    OP_REQUIRES_OK(ctx, ReadLayerMathAttrs(ctx, &c_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("append", &append_));
  }

  void Compute(OpKernelContext* ctx) override {
    using Launch = StepLaunch<Device, T>;
    const int64_t max_keys = lightseq::kStepAttentionMaxKeys;
    lightseq::DecoderStepConfig c = c_;
    const Tensor& x = ctx->input(0);
    const Tensor& keys = ctx->input(1);
    const Tensor& values = ctx->input(2);
    const Tensor& length = ctx->input(3);
    const Tensor& mem_k = ctx->input(4);
    const Tensor& mem_v = ctx->input(5);
    OP_REQUIRES_OK(ctx, CheckLayerInput(x, c.heads));
    c.batch = x.dim_size(0);
    c.q_len = x.dim_size(1);
    c.hidden = x.dim_size(2);
    const int64_t B = c.batch, n = c.q_len, heads = c.heads, dh = c.hidden / heads;
    OP_REQUIRES(ctx, dh <= lightseq::kStepAttentionMaxHeadDim,
                errors::InvalidArgument("head size ", dh, " (hidden ", c.hidden, " / heads ",
                                        heads, ") exceeds the decoding attention's limit ",
                                        lightseq::kStepAttentionMaxHeadDim));
    OP_REQUIRES_OK(ctx, CheckHeadsLayout(keys, "cache_keys", B, heads, dh, "cache_length"));
    OP_REQUIRES(ctx, values.shape() == keys.shape(),
                errors::InvalidArgument("cache_values must have the shape of cache_keys ",
                                        ShapeStr(keys.shape()), ", got ",
                                        ShapeStr(values.shape())));
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsScalar(length.shape()),
                errors::InvalidArgument("cache_length must be a scalar int32, got shape ",
                                        ShapeStr(length.shape())));
    const int64_t C = keys.dim_size(1), t = length.scalar<int32_t>()();
    if (append_) {
      OP_REQUIRES(ctx, t == C,
                  errors::InvalidArgument("cache_length (", t, ") must equal the cache's length ",
                                          C, " when appending (the dynamic cache)"));
      c.capacity = C + n;
    } else {
      OP_REQUIRES(ctx, t >= 0 && t + n <= C,
                  errors::InvalidArgument("decoding position cache_length (", t, ") + ", n,
                                          " new position(s) exceeds the padded cache length ", C,
                                          " (or cache_length < 0)"));
      c.capacity = C;
    }
    OP_REQUIRES(ctx, c.capacity <= max_keys,
                errors::InvalidArgument("decoding length ", c.capacity,
                                        " exceeds the decoding attention's limit of ", max_keys,
                                        " positions"));
    OP_REQUIRES_OK(ctx, CheckHeadsLayout(mem_k, "memory_keys", B, heads, dh, "memory_length"));
    OP_REQUIRES(ctx, mem_v.shape() == mem_k.shape(),
                errors::InvalidArgument("memory_values must have the shape of memory_keys ",
                                        ShapeStr(mem_k.shape()), ", got ",
                                        ShapeStr(mem_v.shape())));
    c.mem_len = mem_k.dim_size(1);
    OP_REQUIRES(ctx, c.mem_len <= max_keys,
                errors::InvalidArgument("memory length ", c.mem_len,
                                        " exceeds the decoding attention's limit of ", max_keys,
                                        " positions"));
    OP_REQUIRES_OK(ctx, CheckLengths(ctx->input(6), "memory_lengths", B, c.mem_len,
                                     "memory's length", Launch::kCheckLengths));
    OP_REQUIRES_OK(ctx, ReadFfnWidth(ctx->input(kFirstParam + 14), &c.ffn));
    const int64_t H = c.hidden, F = c.ffn;
    const TensorShape h({H}), hh({H, H});
    const TensorShape want[18] = {h, h, TensorShape({H, 3 * H}), TensorShape({3 * H}), hh, h,
                                  h, h, hh, h, hh, h, h, h, TensorShape({H, F}), TensorShape({F}),
                                  TensorShape({F, H}), h};
    OP_REQUIRES_OK(ctx, CheckParamShapes(ctx, kFirstParam, kParamNames, want, H, F));

    Tensor *y, *new_keys, *new_values;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const int64_t row_bytes = heads * dh * sizeof(T);
    if (append_) {  // old rows, then this step's (written by the layer)
      const TensorShape out({B, c.capacity, heads, dh});
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1, out, &new_keys));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(2, out, &new_values));
      for (auto [src, dst] : {std::pair{&keys, new_keys}, {&values, new_values}})
        CopyRows<Device>(ctx, Ptr<char>(*src), C * row_bytes, MutPtr<char>(dst),
                         c.capacity * row_bytes, C * row_bytes, B);
    } else {  // the cache itself, in place when no one else holds it
      OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({1}, 1, keys.shape(), &new_keys));
      OP_REQUIRES_OK(ctx,
                     ctx->forward_input_or_allocate_output({2}, 2, values.shape(), &new_values));
      for (auto [src, dst] : {std::pair{&keys, new_keys}, {&values, new_values}})
        if (Ptr<char>(*src) != Ptr<char>(dst))
          CopyRows<Device>(ctx, Ptr<char>(*src), 0, MutPtr<char>(dst), 0, src->TotalBytes(), 1);
    }
    if (!ctx->status().ok() || B * n == 0) return;
    Tensor ws;
    OP_REQUIRES_OK(ctx, AllocateWorkspace(ctx,
                                          lightseq::decoder_step_workspace_bytes(
                                              CudaDType<T>::value, c), &ws));
    Launch::Run(ctx, c, Ptr<T>(x), MutPtr<T>(new_keys), MutPtr<T>(new_values), t, Ptr<T>(mem_k),
                Ptr<T>(mem_v), Ptr<int32_t>(ctx->input(6)), MutPtr<T>(y), MutPtr<uint8_t>(&ws));
  }

 private:
  lightseq::DecoderStepConfig c_;
  bool append_;
};

#define LIGHTSEQ_REGISTER(DEV, DEVICE, T, HOST)                                               \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("LightseqDecoderStep").Device(tensorflow::DEV).TypeConstraint<T>("T") HOST,        \
      DecoderStepOp<DEVICE, T>);
#define LIGHTSEQ_NO_HOST
LIGHTSEQ_REGISTER(DEVICE_CPU, CPUDevice, float, LIGHTSEQ_NO_HOST)
LIGHTSEQ_REGISTER(DEVICE_CPU, CPUDevice, Eigen::half, LIGHTSEQ_NO_HOST)
LIGHTSEQ_REGISTER(DEVICE_CPU, CPUDevice, Eigen::bfloat16, LIGHTSEQ_NO_HOST)
#if GOOGLE_CUDA
LIGHTSEQ_REGISTER(DEVICE_GPU, GPUDevice, float, .HostMemory("cache_length"))
LIGHTSEQ_REGISTER(DEVICE_GPU, GPUDevice, Eigen::half, .HostMemory("cache_length"))
LIGHTSEQ_REGISTER(DEVICE_GPU, GPUDevice, Eigen::bfloat16, .HostMemory("cache_length"))
#endif
#undef LIGHTSEQ_REGISTER
#undef LIGHTSEQ_NO_HOST

}  // namespace lightseq_tf
