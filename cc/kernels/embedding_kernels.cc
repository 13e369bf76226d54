// OpKernels for LightseqEmbedding / LightseqEmbeddingGrad.
//
// Out-of-range ids: the CPU kernel checks them before it reads the table. The
// GPU kernel cannot without a host round trip, so it never dereferences them
// (zero rows) and records the first bad token's index on the device; the
// forward op is asynchronous on the GPU and turns that record into the same
// InvalidArgument once the stream has reached it (as TensorFlow's own
// data-dependent GPU ops do), without blocking the host.
#define EIGEN_USE_THREADS
#include <cmath>
#include <string>

#include "cc/kernels/cpu/embedding_cpu.h"
#include "cc/kernels/tf_glue.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#if GOOGLE_CUDA
#include "lightseq/embedding.h"
#include "tensorflow/core/common_runtime/gpu/gpu_event_mgr.h"
#include "xla/stream_executor/stream.h"
#include "xla/stream_executor/stream_executor.h"
#endif

namespace lightseq_tf {

namespace {

// Positions are float32 in the sinusoid: exact below 2^24.
constexpr int64_t kMaxPosition = int64_t{1} << 24;

struct EmbeddingConfig {
  lightseq::EmbeddingShape shape;
  lightseq::EmbeddingArgs args;
};

absl::Status ReadScalarInt(const Tensor& t, const char* name, int64_t* out) {
  if (!tensorflow::TensorShapeUtils::IsScalar(t.shape()))
    return errors::InvalidArgument(name, " must be a scalar, got shape ", ShapeStr(t.shape()));
  *out = t.scalar<int32_t>()();
  return absl::OkStatus();
}

absl::Status CheckTable(const Tensor& table) {
  if (table.dims() != 2)
    return errors::InvalidArgument("table must have rank 2 ([vocab, hidden]), got shape ",
                                   ShapeStr(table.shape()));
  return absl::OkStatus();
}

class EmbeddingAttrs {
 protected:
  explicit EmbeddingAttrs(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding_id", &padding_id_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &rate_));
    if (ctx->HasAttr("positions")) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr("positions", &positions_));
      OP_REQUIRES_OK(ctx, ctx->GetAttr("max_positions", &max_positions_));
    }
    OP_REQUIRES_OK(ctx, CheckDropoutRate(rate_));
    OP_REQUIRES(ctx, std::isfinite(scale_),
                errors::InvalidArgument("scale must be finite, got ", scale_));
    OP_REQUIRES(ctx, max_positions_ >= 0,
                errors::InvalidArgument("max_positions must be >= 0 (0: no limit), got ",
                                        max_positions_));
  }

  // Sizes and arguments of one call; ids any rank >= 1, [vocab, hidden] table.
  absl::Status Configure(const Tensor& ids, int64_t vocab, int64_t hidden, int64_t pos_offset,
                         const Tensor& seed, EmbeddingConfig* c) const {
    if (ids.dims() < 1)
      return errors::InvalidArgument("ids must have rank >= 1, got a scalar");
    if (vocab < 1 || vocab >= (int64_t{1} << 31) - 1)
      return errors::InvalidArgument("vocab size (table rows) must be in [1, 2^31 - 1), got ",
                                     vocab);
    if (hidden < 1) return errors::InvalidArgument("hidden size (table columns) must be >= 1");
    if (padding_id_ >= vocab)
      return errors::InvalidArgument("padding_id (", padding_id_, ") must be < vocab = ", vocab,
                                     " (or < 0: none)");
    const int64_t tokens = ids.NumElements();
    if (tokens >= (int64_t{1} << 31))
      return errors::InvalidArgument("at most 2^31 - 1 ids per call, got ", tokens);
    const int64_t len = ids.dims() >= 2 ? ids.dim_size(ids.dims() - 1) : 1;
    if (pos_offset < 0)
      return errors::InvalidArgument("pos_offset must be >= 0, got ", pos_offset);
    const int64_t limit = max_positions_ > 0 ? max_positions_ : kMaxPosition;
    if (positions_ && pos_offset + len > limit)
      return errors::InvalidArgument(
          "positions up to pos_offset + length = ", pos_offset, " + ", len, " = ",
          pos_offset + len, " exceed ", max_positions_ > 0 ? "max_positions = " : "the limit ",
          limit);
    uint64_t s;
    TF_RETURN_IF_ERROR(ReadSeed(seed, &s));
    c->shape = {tokens, len > 0 ? len : 1, hidden, vocab};
    c->args = {scale_, positions_, pos_offset, padding_id_, s, rate_};
    return absl::OkStatus();
  }

  // The forward's inputs: ids, table [vocab, hidden], pos_offset, seed.
  absl::Status ConfigureForward(OpKernelContext* ctx, EmbeddingConfig* c) const {
    const Tensor& table = ctx->input(1);
    TF_RETURN_IF_ERROR(CheckTable(table));
    int64_t offset;
    TF_RETURN_IF_ERROR(ReadScalarInt(ctx->input(2), "pos_offset", &offset));
    return Configure(ctx->input(0), table.dim_size(0), table.dim_size(1), offset, ctx->input(3),
                     c);
  }

  float scale_ = 1.f;
  bool positions_ = false;
  int64_t max_positions_ = 0;
  int64_t padding_id_ = -1;
  float rate_ = 0.f;
};

absl::Status BadId(int64_t index, const std::string& value, int64_t vocab) {
  return errors::InvalidArgument("ids (flat index ", index, ") = ", value,
                                 " is outside [0, vocab = ", vocab, ")");
}

template <typename I>
absl::Status CheckIds(const Tensor& ids, int64_t vocab) {
  const I* p = Ptr<I>(ids);
  for (int64_t t = 0; t < ids.NumElements(); ++t) {
    const int64_t v = static_cast<int64_t>(p[t]);
    if (v < 0 || v >= vocab) return BadId(t, std::to_string(v), vocab);
  }
  return absl::OkStatus();
}

TensorShape OutputShape(const Tensor& ids, int64_t hidden) {
  TensorShape s = ids.shape();
  s.AddDim(hidden);
  return s;
}

}  // namespace

template <typename T, typename TT, typename I>
class EmbeddingCpuOp : public OpKernel, EmbeddingAttrs {
 public:
  explicit EmbeddingCpuOp(OpKernelConstruction* ctx) : OpKernel(ctx), EmbeddingAttrs(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& ids = ctx->input(0);
    const Tensor& table = ctx->input(1);
    EmbeddingConfig c;
    OP_REQUIRES_OK(ctx, ConfigureForward(ctx, &c));
    OP_REQUIRES_OK(ctx, CheckIds<I>(ids, c.shape.vocab));
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, OutputShape(ids, c.shape.hidden), &y));
    EmbeddingForwardCpu<T, TT, I>(CpuPool(ctx), Ptr<I>(ids), Ptr<TT>(table), MutPtr<T>(y),
                                  c.shape, c.args);
  }
};

// The gradient's inputs: dy = ids.shape + [hidden], vocab a scalar, seed.
class EmbeddingGradAttrs : public EmbeddingAttrs {
 protected:
  explicit EmbeddingGradAttrs(OpKernelConstruction* ctx) : EmbeddingAttrs(ctx) {}
  absl::Status ConfigureGrad(OpKernelContext* ctx, EmbeddingConfig* c) const {
    const Tensor& dy = ctx->input(0);
    const Tensor& ids = ctx->input(1);
    int64_t vocab;
    TF_RETURN_IF_ERROR(ReadScalarInt(ctx->input(2), "vocab", &vocab));
    bool match = dy.dims() == ids.dims() + 1;
    for (int d = 0; match && d < ids.dims(); ++d) match = dy.dim_size(d) == ids.dim_size(d);
    if (!match)
      return errors::InvalidArgument("dy must have shape ids.shape + [hidden], got ",
                                     ShapeStr(dy.shape()), " for ids ", ShapeStr(ids.shape()));
    return Configure(ids, vocab, dy.dim_size(dy.dims() - 1), 0, ctx->input(3), c);
  }
};

template <typename T, typename TT, typename I>
class EmbeddingGradCpuOp : public OpKernel, EmbeddingGradAttrs {
 public:
  explicit EmbeddingGradCpuOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), EmbeddingGradAttrs(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    EmbeddingConfig c;
    OP_REQUIRES_OK(ctx, ConfigureGrad(ctx, &c));
    OP_REQUIRES_OK(ctx, CheckIds<I>(ctx->input(1), c.shape.vocab));
    Tensor* dtable;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({c.shape.vocab, c.shape.hidden}), &dtable));
    EmbeddingBackwardCpu<T, TT, I>(CpuPool(ctx), Ptr<T>(ctx->input(0)), Ptr<I>(ctx->input(1)),
                                   MutPtr<TT>(dtable), c.shape, c.args);
  }
};

#if GOOGLE_CUDA

template <typename T, typename TT, typename I>
class EmbeddingGpuOp : public tensorflow::AsyncOpKernel, EmbeddingAttrs {
 public:
  explicit EmbeddingGpuOp(OpKernelConstruction* ctx)
      : AsyncOpKernel(ctx), EmbeddingAttrs(ctx) {}

  void ComputeAsync(OpKernelContext* ctx, DoneCallback done) override {
    const Tensor& ids = ctx->input(0);
    const Tensor& table = ctx->input(1);
    EmbeddingConfig c;
    OP_REQUIRES_OK_ASYNC(ctx, ConfigureForward(ctx, &c), done);
    Tensor* y;
    OP_REQUIRES_OK_ASYNC(ctx, ctx->allocate_output(0, OutputShape(ids, c.shape.hidden), &y),
                         done);
    if (c.shape.tokens == 0) {
      done();
      return;
    }
    Tensor bad_dev, bad_host;
    OP_REQUIRES_OK_ASYNC(ctx, ctx->allocate_temp(tensorflow::DT_UINT64, TensorShape({1}),
                                                 &bad_dev),
                         done);
    tensorflow::AllocatorAttributes host;
    host.set_on_host(true);
    host.set_gpu_compatible(true);
    OP_REQUIRES_OK_ASYNC(ctx, ctx->allocate_temp(tensorflow::DT_UINT64, TensorShape({1}),
                                                 &bad_host, host),
                         done);
    cudaStream_t stream = ctx->eigen_gpu_device().stream();
    auto* bad = MutPtr<unsigned long long>(&bad_dev);
    cudaError_t err = cudaMemsetAsync(bad, 0xff, sizeof(*bad), stream);  // kNoBadIndex
    if (err == cudaSuccess)
      err = lightseq::embedding_fwd(CudaDType<T>::value, CudaDType<TT>::value, Ptr<I>(ids),
                                    sizeof(I) == 8, Ptr<TT>(table), MutPtr<T>(y), c.shape,
                                    c.args, bad, stream);
    if (err == cudaSuccess)
      err = cudaMemcpyAsync(MutPtr<unsigned long long>(&bad_host), bad, sizeof(*bad),
                            cudaMemcpyDeviceToHost, stream);
    OP_REQUIRES_ASYNC(ctx, err == cudaSuccess,
                      errors::Internal("lightseq::embedding_fwd failed: ", cudaGetErrorName(err),
                                       " (", cudaGetErrorString(err), ")"),
                      done);
    const int64_t vocab = c.shape.vocab;
    stream_executor::Stream* se_stream = ctx->op_device_context()->stream();
    // bad_host and bad_dev stay alive in the closure until the check has run.
    auto check = [ctx, done, bad_host, bad_dev, vocab, se_stream]() {
      auto activation = se_stream->parent()->Activate();
      const unsigned long long first = *Ptr<unsigned long long>(bad_host);
      if (first != lightseq::kNoBadIndex)
        ctx->SetStatus(BadId(static_cast<int64_t>(first), "a value", vocab));
      done();
    };
    ctx->device()->tensorflow_accelerator_device_info()->event_mgr->ThenExecute(se_stream,
                                                                               std::move(check));
  }
};

template <typename T, typename TT, typename I>
class EmbeddingGradGpuOp : public OpKernel, EmbeddingGradAttrs {
 public:
  explicit EmbeddingGradGpuOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), EmbeddingGradAttrs(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    EmbeddingConfig c;
    OP_REQUIRES_OK(ctx, ConfigureGrad(ctx, &c));
    Tensor* dtable;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({c.shape.vocab, c.shape.hidden}), &dtable));
    const size_t ws_bytes = lightseq::embedding_bwd_workspace_bytes(c.shape.tokens, c.shape.vocab,
                                                                  c.shape.hidden);
    Tensor ws;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_INT8,
                                           TensorShape({static_cast<int64_t>(ws_bytes)}), &ws));
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::embedding_bwd(CudaDType<T>::value, CudaDType<TT>::value, Ptr<T>(ctx->input(0)),
                                Ptr<I>(ctx->input(1)), sizeof(I) == 8, MutPtr<TT>(dtable),
                                c.shape, c.args, MutPtr<int8_t>(&ws), ws_bytes,
                                ctx->eigen_gpu_device().stream()),
        "lightseq::embedding_bwd");
  }
};
#endif  // GOOGLE_CUDA

#define LIGHTSEQ_REGISTER_CPU(T, TT, I)                                                    \
  REGISTER_KERNEL_BUILDER(Name("LightseqEmbedding")                                        \
                              .Device(tensorflow::DEVICE_CPU)                              \
                              .TypeConstraint<T>("T")                                      \
                              .TypeConstraint<TT>("Ttable")                                \
                              .TypeConstraint<I>("Tidx"),                                  \
                          EmbeddingCpuOp<T, TT, I>);                                       \
  REGISTER_KERNEL_BUILDER(Name("LightseqEmbeddingGrad")                                    \
                              .Device(tensorflow::DEVICE_CPU)                              \
                              .TypeConstraint<T>("T")                                      \
                              .TypeConstraint<TT>("Ttable")                                \
                              .TypeConstraint<I>("Tidx"),                                  \
                          EmbeddingGradCpuOp<T, TT, I>);
#if GOOGLE_CUDA
#define LIGHTSEQ_REGISTER_GPU(T, TT, I)                                                    \
  REGISTER_KERNEL_BUILDER(Name("LightseqEmbedding")                                        \
                              .Device(tensorflow::DEVICE_GPU)                              \
                              .TypeConstraint<T>("T")                                      \
                              .TypeConstraint<TT>("Ttable")                                \
                              .TypeConstraint<I>("Tidx")                                   \
                              .HostMemory("pos_offset")                                    \
                              .HostMemory("seed"),                                         \
                          EmbeddingGpuOp<T, TT, I>);                                       \
  REGISTER_KERNEL_BUILDER(Name("LightseqEmbeddingGrad")                                    \
                              .Device(tensorflow::DEVICE_GPU)                              \
                              .TypeConstraint<T>("T")                                      \
                              .TypeConstraint<TT>("Ttable")                                \
                              .TypeConstraint<I>("Tidx")                                   \
                              .HostMemory("vocab")                                         \
                              .HostMemory("seed"),                                         \
                          EmbeddingGradGpuOp<T, TT, I>);
#else
#define LIGHTSEQ_REGISTER_GPU(T, TT, I)
#endif
#define LIGHTSEQ_REGISTER(T, TT)                                          \
  LIGHTSEQ_REGISTER_CPU(T, TT, int32_t) LIGHTSEQ_REGISTER_CPU(T, TT, int64_t) \
  LIGHTSEQ_REGISTER_GPU(T, TT, int32_t) LIGHTSEQ_REGISTER_GPU(T, TT, int64_t)
LIGHTSEQ_EMBEDDING_TYPES(LIGHTSEQ_REGISTER)
#undef LIGHTSEQ_REGISTER
#undef LIGHTSEQ_REGISTER_GPU
#undef LIGHTSEQ_REGISTER_CPU

}  // namespace lightseq_tf
