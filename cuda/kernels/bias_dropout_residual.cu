// y = residual + dropout(x + bias), and its backward (dx, dbias).
#include "lightseq/bias_dropout_residual.h"

#include "fused_dropout.cuh"

namespace lightseq {
namespace {

using detail::ActIdentity;

template <typename T>
cudaError_t fwd(const void* x, const void* bias, const void* residual, void* y, int64_t rows,
                int64_t hidden, detail::DropoutArgs d, cudaStream_t stream) {
  return detail::fused_dropout_fwd<T, ActIdentity>(
      static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<const T*>(residual),
      static_cast<T*>(y), rows, hidden, d, stream);
}

template <typename T>
cudaError_t bwd(const void* dy, void* dx, void* dbias, void* ws, int64_t rows, int64_t hidden,
                detail::DropoutArgs d, cudaStream_t stream) {
  return detail::fused_dropout_bwd<T, ActIdentity>(static_cast<const T*>(dy), nullptr, nullptr,
                                                   static_cast<T*>(dx), static_cast<T*>(dbias),
                                                   ws, rows, hidden, d, stream);
}

bool valid(int64_t rows, int64_t hidden, float rate) {
  return rows >= 0 && hidden > 0 && valid_dropout_rate(rate);
}

}  // namespace

cudaError_t bias_dropout_residual_fwd(DType dtype, const void* x, const void* bias,
                                      const void* residual, void* y, int64_t rows,
                                      int64_t hidden, uint64_t seed, float rate,
                                      cudaStream_t stream) {
  if (!valid(rows, hidden, rate)) return cudaErrorInvalidValue;
  const auto d = detail::make_dropout_args(seed, rate);
  return detail::dispatch_dtype(dtype, [&](auto t) {
    return fwd<decltype(t)>(x, bias, residual, y, rows, hidden, d, stream);
  });
}

size_t bias_dropout_residual_bwd_workspace_bytes(DType dtype, int64_t rows, int64_t hidden) {
  return detail::bias_grad_workspace_bytes(rows, hidden);
}

cudaError_t bias_dropout_residual_bwd(DType dtype, const void* dy, void* dx, void* dbias,
                                      void* workspace, int64_t rows, int64_t hidden,
                                      uint64_t seed, float rate, cudaStream_t stream) {
  if (!valid(rows, hidden, rate)) return cudaErrorInvalidValue;
  const auto d = detail::make_dropout_args(seed, rate);
  return detail::dispatch_dtype(dtype, [&](auto t) {
    return bwd<decltype(t)>(dy, dx, dbias, workspace, rows, hidden, d, stream);
  });
}

}  // namespace lightseq
