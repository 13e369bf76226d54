// Small pieces every OpKernel of ours shares: dtype mapping to the cuda/ API
// and turning a launcher's cudaError_t into a TensorFlow status.
#pragma once

#include <string>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"

#include "lightseq/activation.h"
#include "lightseq/dtype.h"

namespace lightseq_tf {

// Names every OpKernel file of ours uses.
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
namespace errors = tensorflow::errors;
using CPUDevice = Eigen::ThreadPoolDevice;
#if GOOGLE_CUDA
using GPUDevice = Eigen::GpuDevice;
#endif

template <typename T>
struct CudaDType;
template <>
struct CudaDType<float> {
  static constexpr lightseq::DType value = lightseq::DType::kFloat32;
};
template <>
struct CudaDType<Eigen::half> {
  static constexpr lightseq::DType value = lightseq::DType::kFloat16;
};
template <>
struct CudaDType<Eigen::bfloat16> {
  static constexpr lightseq::DType value = lightseq::DType::kBFloat16;
};

// TensorFlow's intra-op thread pool, which every CPU twin runs on.
inline tensorflow::thread::ThreadPool* CpuPool(tensorflow::OpKernelContext* ctx) {
  return ctx->device()->tensorflow_cpu_worker_threads()->workers;
}

// "[2,3,4]" for error messages.
inline std::string ShapeStr(const tensorflow::TensorShape& s) {
  return s.DebugString();
}

// Typed views of a tensor's buffer (null for a null tensor: optional inputs).
template <typename T>
const T* Ptr(const tensorflow::Tensor& t) {
  return reinterpret_cast<const T*>(t.tensor_data().data());
}
template <typename T>
const T* Ptr(const tensorflow::Tensor* t) {
  return t ? Ptr<T>(*t) : nullptr;
}
template <typename T>
T* MutPtr(tensorflow::Tensor* t) {
  return t ? reinterpret_cast<T*>(const_cast<char*>(t->tensor_data().data())) : nullptr;
}

inline absl::Status CheckDropoutRate(float rate) {
  if (!(rate >= 0.f && rate < 1.f))
    return tensorflow::errors::InvalidArgument("rate must be in [0, 1), got ", rate);
  return absl::OkStatus();
}

// The `activation` attribute of our ops (relu | gelu | gelu_tanh).
inline absl::Status ParseActivation(const std::string& name, lightseq::Activation* act) {
  for (auto a : {lightseq::Activation::kRelu, lightseq::Activation::kGelu,
                 lightseq::Activation::kGeluTanh}) {
    if (name == lightseq::activation_name(a)) {
      *act = a;
      return absl::OkStatus();
    }
  }
  return errors::InvalidArgument("activation must be relu, gelu or gelu_tanh, got ", name);
}

// The stateless dropout seed: a scalar int64 tensor (in host memory).
inline absl::Status ReadSeed(const tensorflow::Tensor& seed, uint64_t* out) {
  *out = 0;  // set on every path: GCC's -Wmaybe-uninitialized cannot tie it to the status
  if (!tensorflow::TensorShapeUtils::IsScalar(seed.shape()))
    return tensorflow::errors::InvalidArgument("seed must be a scalar int64, got shape ",
                                               ShapeStr(seed.shape()));
  *out = static_cast<uint64_t>(seed.scalar<int64_t>()());
  return absl::OkStatus();
}

}  // namespace lightseq_tf

// REG(DEV, DEVICE, T) for every device (GPU only in CUDA builds) and every
// element type our ops take: one list for all kernel registrations.
#if GOOGLE_CUDA
#define LIGHTSEQ_FOR_GPU_TYPES(REG)            \
  REG(DEVICE_GPU, GPUDevice, float)            \
  REG(DEVICE_GPU, GPUDevice, Eigen::half)      \
  REG(DEVICE_GPU, GPUDevice, Eigen::bfloat16)
#else
#define LIGHTSEQ_FOR_GPU_TYPES(REG)
#endif
#define LIGHTSEQ_FOR_DEVICES_AND_TYPES(REG)    \
  REG(DEVICE_CPU, CPUDevice, float)            \
  REG(DEVICE_CPU, CPUDevice, Eigen::half)      \
  REG(DEVICE_CPU, CPUDevice, Eigen::bfloat16)  \
  LIGHTSEQ_FOR_GPU_TYPES(REG)

#if GOOGLE_CUDA
#include <cuda_runtime_api.h>
// A launcher failure after validation is an internal error (or a sticky CUDA
// error from earlier work on the device); name the launcher and the CUDA error.
#define LIGHTSEQ_OP_REQUIRES_CUDA(ctx, expr, what)                               \
  do {                                                                           \
    const cudaError_t lightseq_err_ = (expr);                                    \
    OP_REQUIRES(ctx, lightseq_err_ == cudaSuccess,                               \
                tensorflow::errors::Internal(what, " failed: ",                  \
                                             cudaGetErrorName(lightseq_err_), " (", \
                                             cudaGetErrorString(lightseq_err_), ")")); \
  } while (0)
#endif
