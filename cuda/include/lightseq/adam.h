// Fused multi-tensor Adam / AdamW: one kernel launch updates a whole list of
// tensors (fp32 master weights, fp32 m and v, grads of one dtype, optional
// fp16/bf16 model copy written from the updated fp32 weights). The list is
// packed by value into kernel parameters (Apex style), as many tensors per
// launch as fit in 4 KB (so nvcc 12.0 builds it); a transformer-big list (193
// tensors) takes 3 launches. Order of operations: lightseq/adam_step.h; every
// op is rounded separately (no FMA) and denormals are kept, so results equal
// the CPU twin (and a numpy float32 step) bit for bit.
//
// found_inf: optional device float (null for none). When *found_inf != 0 the
// step is skipped and nothing is written; reading it on the device lets a
// caller run check -> step without a host synchronisation.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/adam_step.h"
#include "lightseq/dtype.h"

namespace lightseq {

struct AdamTensor {
  float* param;       // fp32 master weight, updated in place
  float* m;           // fp32 first moment, updated in place
  float* v;           // fp32 second moment, updated in place
  const void* grad;   // of the call's grad_dtype
  void* model_copy;   // null, or of the call's copy_dtype: receives the new param
  int64_t numel;
};

// Returns cudaErrorInvalidValue (and launches nothing) if a hyper-parameter is
// out of adam_hyper_valid's ranges, a pointer of a non-empty tensor is null,
// numel < 0 or copy_dtype is float32 while a model copy is given. Vectorised
// 16-byte access for tensors whose pointers are all aligned, scalar otherwise.
cudaError_t multi_tensor_adam(const AdamTensor* tensors, int count, DType grad_dtype,
                              DType copy_dtype, const AdamHyper& hyper, const float* found_inf,
                              cudaStream_t stream);

// found_inf = 1.0f if any element of any grads[i] (numel[i] elements of dtype)
// is NaN or +-Inf, else untouched; with reset it is first set to 0 on the
// stream (so one call computes the flag; further calls with reset = false OR
// more lists, e.g. of another dtype, into it).
cudaError_t multi_tensor_found_inf(const void* const* grads, const int64_t* numel, int count,
                                   DType dtype, float* found_inf, bool reset,
                                   cudaStream_t stream);

}  // namespace lightseq
