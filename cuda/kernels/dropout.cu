// Standalone inverted dropout (attention probabilities aside, where it is
// fused into the softmax): the flat tensor as one row.
#include "lightseq/dropout.h"

#include "fused_dropout.cuh"

namespace lightseq {

cudaError_t dropout_fwd(DType dtype, const void* x, void* y, int64_t n, uint64_t seed,
                        float rate, cudaStream_t stream) {
  using namespace detail;
  if (n < 0 || !valid_rate(rate)) return cudaErrorInvalidValue;
  const DropoutArgs d = make_dropout_args(seed, rate);
  switch (dtype) {
    case DType::kFloat32:
      return fused_dropout_fwd<float, ActIdentity>(static_cast<const float*>(x), nullptr, nullptr,
                                                   static_cast<float*>(y), 1, n, d, stream);
    case DType::kFloat16:
      return fused_dropout_fwd<__half, ActIdentity>(static_cast<const __half*>(x), nullptr,
                                                    nullptr, static_cast<__half*>(y), 1, n, d,
                                                    stream);
    case DType::kBFloat16:
      return fused_dropout_fwd<__nv_bfloat16, ActIdentity>(
          static_cast<const __nv_bfloat16*>(x), nullptr, nullptr, static_cast<__nv_bfloat16*>(y),
          1, n, d, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace lightseq
