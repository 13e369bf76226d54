// Standalone inverted dropout (attention probabilities aside, where it is
// fused into the softmax): the flat tensor as one row.
#include "lightseq/dropout.h"

#include "fused_dropout.cuh"

namespace lightseq {

cudaError_t dropout_fwd(DType dtype, const void* x, void* y, int64_t n, uint64_t seed,
                        float rate, cudaStream_t stream) {
  using namespace detail;
  if (n < 0 || !valid_dropout_rate(rate)) return cudaErrorInvalidValue;
  const DropoutArgs d = make_dropout_args(seed, rate);
  return detail::dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return fused_dropout_fwd<T, ActIdentity>(static_cast<const T*>(x), nullptr, nullptr,
                                             static_cast<T*>(y), 1, n, d, stream);
  });
}

}  // namespace lightseq
