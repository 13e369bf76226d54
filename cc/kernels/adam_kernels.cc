// OpKernel for LightseqMultiTensorAdam: locks the 3N variables, makes each one
// writable in place (copy-on-write when a reader still shares its buffer),
// validates, then runs one multi-tensor launch (GPU) or the CPU twin.
#define EIGEN_USE_THREADS
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "cc/kernels/cpu/adam_cpu.h"
#include "cc/kernels/tf_glue.h"
#include "lightseq/adam_step.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#if GOOGLE_CUDA
#include "lightseq/adam.h"
#endif

namespace lightseq_tf {

namespace {

constexpr const char* kLists[3] = {"var", "m", "v"};

template <typename T>
absl::Status ReadScalar(OpKernelContext* ctx, int input, const char* name, T* out) {
  const Tensor& t = ctx->input(input);
  if (!tensorflow::TensorShapeUtils::IsScalar(t.shape()))
    return errors::InvalidArgument(name, " must be a scalar, got shape ", ShapeStr(t.shape()));
  *out = t.scalar<T>()();
  return absl::OkStatus();
}

// Hyper-parameters (host-memory scalars after the 4N list inputs), each range
// checked with its own message; adam_hyper_valid is the same test in one.
absl::Status ReadHyper(OpKernelContext* ctx, int n, bool adamw, lightseq::AdamHyper* h) {
  const int b = 4 * n;
  TF_RETURN_IF_ERROR(ReadScalar(ctx, b + 0, "lr", &h->lr));
  TF_RETURN_IF_ERROR(ReadScalar(ctx, b + 1, "beta1", &h->beta1));
  TF_RETURN_IF_ERROR(ReadScalar(ctx, b + 2, "beta2", &h->beta2));
  TF_RETURN_IF_ERROR(ReadScalar(ctx, b + 3, "epsilon", &h->eps));
  TF_RETURN_IF_ERROR(ReadScalar(ctx, b + 4, "weight_decay", &h->weight_decay));
  TF_RETURN_IF_ERROR(ReadScalar(ctx, b + 5, "step", &h->step));
  TF_RETURN_IF_ERROR(ReadScalar(ctx, b + 6, "grad_scale", &h->grad_scale));
  h->adamw = adamw;
  if (!(std::isfinite(h->lr) && h->lr >= 0.f))
    return errors::InvalidArgument("lr must be finite and >= 0, got ", h->lr);
  if (!(h->beta1 >= 0.f && h->beta1 < 1.f))
    return errors::InvalidArgument("beta1 must be in [0, 1), got ", h->beta1);
  if (!(h->beta2 >= 0.f && h->beta2 < 1.f))
    return errors::InvalidArgument("beta2 must be in [0, 1), got ", h->beta2);
  if (!(std::isfinite(h->eps) && h->eps > 0.f))
    return errors::InvalidArgument("epsilon must be finite and > 0, got ", h->eps);
  if (!(std::isfinite(h->weight_decay) && h->weight_decay >= 0.f))
    return errors::InvalidArgument("weight_decay must be finite and >= 0, got ", h->weight_decay);
  if (h->step < 1) return errors::InvalidArgument("step must be >= 1, got ", h->step);
  if (!(std::isfinite(h->grad_scale) && h->grad_scale > 0.f))
    return errors::InvalidArgument("grad_scale must be finite and > 0, got ", h->grad_scale);
  return absl::OkStatus();  // adam_hyper_valid(*h) holds now
}

// The tensor of resource input `input` (list `list`, index i), ready to be
// written in place. The caller holds the variable's lock. This is TF's
// GetInputTensorFromVariable(sparse=false) with the copy done by the device's
// memcpy: its own copy goes through functor::DenseUpdate<GPUDevice>, which
// the pip TensorFlow does not export to custom ops.
template <typename Device>
absl::Status WritableVariable(OpKernelContext* ctx, int input, const char* list, int i,
                              tensorflow::core::RefCountPtr<tensorflow::Var>* var,
                              Tensor* out) {
  TF_RETURN_IF_ERROR(
      tensorflow::LookupResource(ctx, tensorflow::HandleFromInput(ctx, input), var));
  Tensor* t = (*var)->tensor();
  if (!t->IsInitialized())
    return errors::FailedPrecondition(list, "[", i, "] is an uninitialized variable");
  if (t->dtype() != tensorflow::DT_FLOAT)
    return errors::InvalidArgument(list, "[", i, "] must be a float32 variable, got ",
                                   tensorflow::DataTypeString(t->dtype()));
  if ((*var)->copy_on_read_mode.load() || !t->RefCountIsOne()) {
    // A read still shares the buffer (or sparse reads may, in copy-on-read
    // mode): update a private copy and make it the variable's value.
    Tensor tmp;
    tensorflow::AllocatorAttributes attr;
    attr.set_gpu_compatible(true);
    attr.set_nic_compatible(true);
    TF_RETURN_IF_ERROR(ctx->allocate_temp(t->dtype(), t->shape(), &tmp, attr));
    if (t->NumElements() > 0)
      ctx->eigen_device<Device>().memcpy(MutPtr<float>(&tmp), Ptr<float>(*t),
                                         t->NumElements() * sizeof(float));
    *t = tmp;
  }
  *out = *t;
  return absl::OkStatus();
}

}  // namespace

template <typename Device, typename T>
struct AdamLaunch;

template <typename T>
struct AdamLaunch<CPUDevice, T> {
  static void Run(OpKernelContext* ctx, std::vector<Tensor>& vars,
                  const std::vector<const Tensor*>& grads,
                  int n, const lightseq::AdamHyper& hyper, const Tensor& found_inf) {
    if (found_inf.scalar<float>()() != 0.f) return;  // overflow step: leave all as they are
    std::vector<AdamTensorCpu<T>> list(n);
    for (int i = 0; i < n; ++i)
      list[i] = {MutPtr<float>(&vars[i]), MutPtr<float>(&vars[n + i]),
                 MutPtr<float>(&vars[2 * n + i]), Ptr<T>(*grads[i]), grads[i]->NumElements()};
    MultiTensorAdamCpu<T>(CpuPool(ctx), list.data(), n, lightseq::adam_scalars(hyper));
  }
};

#if GOOGLE_CUDA
template <typename T>
struct AdamLaunch<GPUDevice, T> {
  static void Run(OpKernelContext* ctx, std::vector<Tensor>& vars,
                  const std::vector<const Tensor*>& grads,
                  int n, const lightseq::AdamHyper& hyper, const Tensor& found_inf) {
    // found_inf stays on the device: the kernel reads it, no host sync.
    std::vector<lightseq::AdamTensor> list(n);
    for (int i = 0; i < n; ++i)
      list[i] = {MutPtr<float>(&vars[i]), MutPtr<float>(&vars[n + i]),
                 MutPtr<float>(&vars[2 * n + i]), Ptr<T>(*grads[i]), nullptr,
                 grads[i]->NumElements()};
    LIGHTSEQ_OP_REQUIRES_CUDA(
        ctx,
        lightseq::multi_tensor_adam(list.data(), n, CudaDType<T>::value,
                                    lightseq::DType::kFloat16, hyper, Ptr<float>(found_inf),
                                    ctx->eigen_gpu_device().stream()),
        "lightseq::multi_tensor_adam");
  }
};
#endif  // GOOGLE_CUDA

template <typename Device, typename T>
class MultiTensorAdamOp : public OpKernel {
 public:
  explicit MultiTensorAdamOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adamw", &adamw_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int n = n_;
    lightseq::AdamHyper hyper;
    OP_REQUIRES_OK(ctx, ReadHyper(ctx, n, adamw_, &hyper));
    const Tensor& found_inf = ctx->input(4 * n + 7);
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsScalar(found_inf.shape()),
                errors::InvalidArgument("found_inf must be a scalar, got shape ",
                                        ShapeStr(found_inf.shape())));

    std::vector<int> ids(3 * n);
    for (int i = 0; i < 3 * n; ++i) ids[i] = i;
    // Locks every distinct variable once, in address order (no deadlock with
    // other multi-variable updates). The device template argument only picks
    // the sparse copy path, which sparse = false never takes.
    auto locks = tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(
        ctx, /*do_lock=*/true, /*sparse=*/false, ids);
    OP_REQUIRES_OK(ctx, ctx->status());

    std::vector<tensorflow::core::RefCountPtr<tensorflow::Var>> refs(3 * n);
    std::vector<Tensor> vars(3 * n);
    std::vector<const Tensor*> grads(n);
    for (int k = 0; k < 3; ++k) {
      for (int i = 0; i < n; ++i) {
        const int j = k * n + i;
        OP_REQUIRES_OK(ctx, WritableVariable<Device>(ctx, j, kLists[k], i, &refs[j], &vars[j]));
        const Tensor& g = ctx->input(3 * n + i);
        grads[i] = &g;
        OP_REQUIRES(ctx, vars[j].shape() == g.shape(),
                    errors::InvalidArgument(kLists[k], "[", i, "] has shape ",
                                            ShapeStr(vars[j].shape()), " but grad[", i,
                                            "] has shape ", ShapeStr(g.shape())));
      }
    }
    // One variable in two roles would be read and written by both at once.
    std::vector<std::pair<const tensorflow::Var*, int>> seen(3 * n);
    for (int j = 0; j < 3 * n; ++j) seen[j] = {refs[j].get(), j};
    std::sort(seen.begin(), seen.end());
    for (int j = 1; j < 3 * n; ++j) {
      const int a = seen[j - 1].second, b = seen[j].second;
      OP_REQUIRES(ctx, seen[j - 1].first != seen[j].first,
                  errors::InvalidArgument("var, m and v must be 3N distinct variables, but ",
                                          kLists[a / n], "[", a % n, "] and ", kLists[b / n],
                                          "[", b % n, "] are the same variable"));
    }
    AdamLaunch<Device, T>::Run(ctx, vars, grads, n, hyper, found_inf);
  }

 private:
  int n_;
  bool adamw_;
};

// The hyper-parameters are read on the host; found_inf stays in device memory
// so that a device-computed overflow flag needs no host sync.
#define LIGHTSEQ_REGISTER(DEV, DEVICE, T)                          \
  REGISTER_KERNEL_BUILDER(Name("LightseqMultiTensorAdam")          \
                              .Device(tensorflow::DEV)             \
                              .TypeConstraint<T>("T")              \
                              .HostMemory("lr")                    \
                              .HostMemory("beta1")                 \
                              .HostMemory("beta2")                 \
                              .HostMemory("epsilon")               \
                              .HostMemory("weight_decay")          \
                              .HostMemory("step")                  \
                              .HostMemory("grad_scale"),           \
                          MultiTensorAdamOp<DEVICE, T>);

LIGHTSEQ_FOR_DEVICES_AND_TYPES(LIGHTSEQ_REGISTER)
#undef LIGHTSEQ_REGISTER

}  // namespace lightseq_tf
