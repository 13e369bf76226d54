// Transformer encoder layer, forward and backward, as two calls: GEMMs
// through lightseq::Gemm plus the fused kernels of this library over
// caller-given memory (no allocation here). Same math, variable layout and dropout streams as
// lightseq_tf.LSTransformerEncoderLayer (NeurST's TransformerEncoderLayer):
//   pre-LN:  x1 = x + drop1(LN1(x) Wqkv .. attention .. Wo + bo)
//            y  = x1 + drop3(act_drop2(LN2(x1) W1 + b1) W2 + b2)
//   post-LN: x1 = LN1(x + drop1(...)),  y = LN2(x1 + drop3(...))
// Attention: keys >= lengths[b] masked, softmax scale 1/sqrt(head_dim),
// probability dropout. Dropout seeds: seed + 0 (attention probabilities),
// + 1 (attention output), + 2 (FFN activation), + 3 (FFN output).
// Weights are row-major [in, out] (TensorFlow / NeurST kernels) in the
// activation dtype; all GEMMs accumulate in float32.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/encoder_layer_layout.h"
#include "lightseq/gemm.h"

namespace lightseq {

// `saved` (encoder_layer_saved_bytes, encoder_layer_layout.h): what the
// forward keeps for the backward; `workspace`: scratch of either call. Both
// 256-byte aligned. `gemm` runs on `stream`.
size_t encoder_layer_workspace_bytes(DType dtype, const EncoderLayerConfig& c);

cudaError_t encoder_layer_fwd(DType dtype, const EncoderLayerConfig& c,
                              const EncoderLayerParams& w, const void* x,
                              const int32_t* lengths, void* y, uint64_t seed, void* saved,
                              void* workspace, const Gemm& gemm, cudaStream_t stream);

// dx and every gradient in `grads` are written (not accumulated).
cudaError_t encoder_layer_bwd(DType dtype, const EncoderLayerConfig& c,
                              const EncoderLayerParams& w, const void* x,
                              const int32_t* lengths, const void* dy, void* dx,
                              const EncoderLayerParams& grads, uint64_t seed, const void* saved,
                              void* workspace, const Gemm& gemm, cudaStream_t stream);

}  // namespace lightseq
