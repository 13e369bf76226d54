// y = dropout(act(x + bias)) for act in {relu, gelu, gelu_tanh}, and its
// backward (dx, dbias), recomputing act'(x + bias) from x.
#include "lightseq/bias_act_dropout.h"

#include "fused_dropout.cuh"

namespace lightseq {
namespace {

template <typename T, class Act>
cudaError_t fwd(const void* x, const void* bias, void* y, int64_t rows, int64_t hidden,
                detail::DropoutArgs d, cudaStream_t stream) {
  return detail::fused_dropout_fwd<T, Act>(static_cast<const T*>(x),
                                           static_cast<const T*>(bias), nullptr,
                                           static_cast<T*>(y), rows, hidden, d, stream);
}

template <typename T, class Act>
cudaError_t bwd(const void* dy, const void* x, const void* bias, void* dx, void* dbias, void* ws,
                int64_t rows, int64_t hidden, detail::DropoutArgs d, cudaStream_t stream) {
  return detail::fused_dropout_bwd<T, Act>(
      static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(bias),
      static_cast<T*>(dx), static_cast<T*>(dbias), ws, rows, hidden, d, stream);
}

// Calls f.template operator()<T, Act>() for the runtime (dtype, act).
template <typename F>
cudaError_t dispatch(DType dtype, Activation act, F&& f) {
  auto by_act = [&](auto tag) -> cudaError_t {
    using T = decltype(tag);
    switch (act) {
      case Activation::kRelu: return f(T(), detail::ActRelu());
      case Activation::kGelu: return f(T(), detail::ActGelu());
      case Activation::kGeluTanh: return f(T(), detail::ActGeluTanh());
    }
    return cudaErrorInvalidValue;
  };
  return detail::dispatch_dtype(dtype, by_act);
}

bool valid(int64_t rows, int64_t hidden, float rate) {
  return rows >= 0 && hidden > 0 && valid_dropout_rate(rate);
}

}  // namespace

cudaError_t bias_act_dropout_fwd(DType dtype, Activation act, const void* x, const void* bias,
                                 void* y, int64_t rows, int64_t hidden, uint64_t seed,
                                 float rate, cudaStream_t stream) {
  if (!valid(rows, hidden, rate)) return cudaErrorInvalidValue;
  const auto d = detail::make_dropout_args(seed, rate);
  return dispatch(dtype, act, [&](auto t, auto a) {
    return fwd<decltype(t), decltype(a)>(x, bias, y, rows, hidden, d, stream);
  });
}

size_t bias_act_dropout_bwd_workspace_bytes(DType dtype, int64_t rows, int64_t hidden) {
  return detail::bias_grad_workspace_bytes(rows, hidden);
}

cudaError_t bias_act_dropout_bwd(DType dtype, Activation act, const void* dy, const void* x,
                                 const void* bias, void* dx, void* dbias, void* workspace,
                                 int64_t rows, int64_t hidden, uint64_t seed, float rate,
                                 cudaStream_t stream) {
  if (!valid(rows, hidden, rate)) return cudaErrorInvalidValue;
  const auto d = detail::make_dropout_args(seed, rate);
  return dispatch(dtype, act, [&](auto t, auto a) {
    return bwd<decltype(t), decltype(a)>(dy, x, bias, dx, dbias, workspace, rows, hidden, d,
                                         stream);
  });
}

}  // namespace lightseq
