// Label-smoothed cross-entropy over logits [rows, vocab] with integer targets
// [rows], fairseq/NeurST form: soft target q = (1 - eps) on the target class
// and eps / (vocab - 1) elsewhere;
//   loss_i = -sum_j q_j log p_j,   nll_i = -log p_target,   p = softmax(logits_i).
// Rows whose target equals padding_id contribute zeros (and zero gradient).
// All math is float32 over fp32/fp16/bf16 logits; no [rows, vocab] float32
// temporary: forward keeps lse_i = logsumexp(logits_i) for the backward, which
// writes dlogits in one pass:
//   dlogits_ij = (dloss_i + dnll_i) p_ij - dloss_i q_j - dnll_i [j == t_i],
// the target entry as dloss (expm1(-nll) + eps) + dnll expm1(-nll) (p_t - 1
// without cancellation for confident tokens; hence nll is a backward input).
// A target outside [0, vocab) that is not padding_id is never dereferenced:
// its row's loss, nll and lse are NaN (and so are the sums) and its dlogits
// row is NaN. (The TF op rejects such targets on the CPU with InvalidArgument.)
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/dtype.h"

namespace lightseq {

// targets: int32 when targets_int64 is false, else int64. loss, nll, lse:
// [rows] float32. sums: float32[3] = {sum loss, sum nll, non-padding tokens}.
cudaError_t cross_entropy_fwd(DType dtype, const void* logits, const void* targets,
                              bool targets_int64, float* loss, float* nll, float* lse,
                              float* sums, int64_t rows, int64_t vocab, float epsilon,
                              int64_t padding_id, cudaStream_t stream);

// dloss, dnll: [rows] float32 upstream gradients of loss and nll (the sums'
// gradients already added by the caller). dlogits: [rows, vocab] of dtype.
cudaError_t cross_entropy_bwd(DType dtype, const float* dloss, const float* dnll,
                              const void* logits, const void* targets, bool targets_int64,
                              const float* lse, const float* nll, void* dlogits, int64_t rows,
                              int64_t vocab,
                              float epsilon, int64_t padding_id, cudaStream_t stream);

}  // namespace lightseq
