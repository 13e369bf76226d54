// What the whole-layer OpKernels (encoder_layer_kernels.cc,
// decoder_layer_kernels.cc, decoder_step_kernels.cc) share: their
// attributes and the checks of their parameter inputs and of the forward's
// `saved` buffer.
#pragma once

#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "cc/kernels/tf_glue.h"
#if GOOGLE_CUDA
#include "cc/kernels/tf_blas_gemm.h"
#endif

namespace lightseq_tf {

// heads, pre_ln, activation and epsilon into any config with those fields
// (EncoderLayerConfig, DecoderLayerConfig, DecoderStepConfig).
template <typename Config>
absl::Status ReadLayerMathAttrs(OpKernelConstruction* ctx, Config* c) {
  int heads;
  std::string act;
  TF_RETURN_IF_ERROR(ctx->GetAttr("heads", &heads));
  TF_RETURN_IF_ERROR(ctx->GetAttr("pre_ln", &c->pre_ln));
  TF_RETURN_IF_ERROR(ctx->GetAttr("activation", &act));
  TF_RETURN_IF_ERROR(ParseActivation(act, &c->act));
  c->heads = heads;
  TF_RETURN_IF_ERROR(ctx->GetAttr("epsilon", &c->epsilon));
  if (!(std::isfinite(c->epsilon) && c->epsilon > 0.f))
    return errors::InvalidArgument("epsilon must be finite and > 0, got ", c->epsilon);
  return absl::OkStatus();
}

// The above plus the three dropout rates (the training ops).
template <typename Config>
absl::Status ReadLayerAttrs(OpKernelConstruction* ctx, Config* c) {
  TF_RETURN_IF_ERROR(ReadLayerMathAttrs(ctx, c));
  for (auto [name, rate] : {std::pair{"attn_dropout", &c->attn_dropout},
                            {"act_dropout", &c->act_dropout},
                            {"hidden_dropout", &c->hidden_dropout}}) {
    TF_RETURN_IF_ERROR(ctx->GetAttr(name, rate));
    if (!(*rate >= 0.f && *rate < 1.f))
      return errors::InvalidArgument(name, " must be in [0, 1), got ", *rate);
  }
  return absl::OkStatus();
}

// The attributes as a base of the layer OpKernels (c_: the config with its
// shape fields still to fill per call).
template <typename Config>
class LayerAttrs {
 protected:
  explicit LayerAttrs(OpKernelConstruction* ctx) : c_{} {
    OP_REQUIRES_OK(ctx, ReadLayerAttrs(ctx, &c_));
  }
  Config c_;
};

// x [B, L, H] with H divisible by heads (hidden = H).
inline absl::Status CheckLayerInput(const Tensor& x, int64_t heads) {
  if (x.dims() != 3)
    return errors::InvalidArgument("x must have rank 3 [batch, length, hidden], got ",
                                   ShapeStr(x.shape()));
  if (x.dim_size(2) % heads != 0)
    return errors::InvalidArgument("hidden size ", x.dim_size(2), " (x's last dimension) must be ",
                                   "divisible by heads = ", heads);
  return absl::OkStatus();
}

// The FFN width from ffn1_kernel [hidden, ffn].
inline absl::Status ReadFfnWidth(const Tensor& ffn1_kernel, int64_t* ffn) {
  if (ffn1_kernel.dims() != 2)
    return errors::InvalidArgument("ffn1_kernel must have rank 2 [hidden, ffn], got ",
                                   ShapeStr(ffn1_kernel.shape()));
  *ffn = ffn1_kernel.dim_size(1);
  return absl::OkStatus();
}

// The backward's incoming gradient against the forward's input.
inline absl::Status CheckDy(const Tensor& dy, const Tensor& x) {
  if (dy.shape() == x.shape()) return absl::OkStatus();
  return errors::InvalidArgument("dy must have the shape of x ", ShapeStr(x.shape()), ", got ",
                                 ShapeStr(dy.shape()));
}

// Inputs first .. first + N - 1 against their names and expected shapes.
template <size_t N>
absl::Status CheckParamShapes(OpKernelContext* ctx, int first, const char* const (&names)[N],
                              const TensorShape (&want)[N], int64_t hidden, int64_t ffn) {
  for (size_t i = 0; i < N; ++i)
    if (ctx->input(first + i).shape() != want[i])
      return errors::InvalidArgument(names[i], " must have shape ", ShapeStr(want[i]),
                                     " (hidden ", hidden, ", ffn ", ffn, "), got ",
                                     ShapeStr(ctx->input(first + i).shape()));
  return absl::OkStatus();
}

// An int32 lengths input [batch] whose values lie in [0, limit] (CPU: the GPU
// kernels clamp instead, as a check would need a device-to-host copy).
inline absl::Status CheckLengths(const Tensor& lengths, const char* name, int64_t batch,
                                 int64_t limit, const char* limit_name, bool check_values) {
  if (lengths.dims() != 1 || lengths.dim_size(0) != batch)
    return errors::InvalidArgument(name, " must have shape [", batch, "] (batch), got ",
                                   ShapeStr(lengths.shape()));
  if (check_values) {
    const int32_t* l = Ptr<int32_t>(lengths);
    for (int64_t b = 0; b < batch; ++b)
      if (l[b] < 0 || l[b] > limit)
        return errors::InvalidArgument(name, "[", b, "] = ", l[b], " is outside [0, ", limit,
                                       "] (", limit_name, ")");
  }
  return absl::OkStatus();
}

inline absl::Status CheckSaved(const Tensor& saved, int64_t bytes) {
  if (saved.dims() == 1 && saved.dim_size(0) == bytes) return absl::OkStatus();
  return errors::InvalidArgument(
      "saved must be the forward's `saved` output for these shapes and attributes ([", bytes,
      "] bytes), got ", ShapeStr(saved.shape()));
}

inline absl::Status AllocateWorkspace(OpKernelContext* ctx, size_t bytes, Tensor* ws) {
  return ctx->allocate_temp(tensorflow::DT_UINT8, TensorShape({static_cast<int64_t>(bytes)}), ws);
}

// Zeroes a tensor on its device (the gradients of an op that saw no tokens).
template <typename Device>
void ZeroTensor(OpKernelContext* ctx, Tensor* t);
template <>
inline void ZeroTensor<CPUDevice>(OpKernelContext*, Tensor* t) {
  std::memset(MutPtr<char>(t), 0, t->TotalBytes());
}

#if GOOGLE_CUDA
template <>
inline void ZeroTensor<GPUDevice>(OpKernelContext* ctx, Tensor* t) {
  LIGHTSEQ_OP_REQUIRES_CUDA(ctx,
                            cudaMemsetAsync(MutPtr<char>(t), 0, t->TotalBytes(),
                                            ctx->eigen_gpu_device().stream()),
                            "cudaMemsetAsync");
}

// Runs a cuda/layers call, fn(const lightseq::Gemm&, cudaStream_t) ->
// cudaError_t, with TensorFlow's BLAS on the op's stream; a failure becomes
// the op's error, naming `what` (and TF's BLAS status when a GEMM failed).
template <typename F>
void RunLayerOnGpu(OpKernelContext* ctx, const char* what, F&& fn) {
  const TfBlasGemm gemm(ctx);
  OP_REQUIRES_OK(ctx, gemm.Available());
  const cudaError_t e = fn(gemm, ctx->eigen_gpu_device().stream());
  OP_REQUIRES_OK(ctx, gemm.last_error());
  LIGHTSEQ_OP_REQUIRES_CUDA(ctx, e, what);
}
#endif  // GOOGLE_CUDA

}  // namespace lightseq_tf
