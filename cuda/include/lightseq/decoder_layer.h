// Transformer decoder layer (training: all target positions at once),
// forward and backward, as two calls: GEMMs through lightseq::Gemm plus the
// fused kernels over caller-given memory. Same math, variable layout and
// dropout streams as lightseq_tf.LSTransformerDecoderLayer (NeurST's
// TransformerDecoderLayer):
//   pre-LN:  x1 = x  + drop(SelfAttn(LN1(x)))          causal
//            x2 = x1 + drop(CrossAttn(LN2(x1), memory)) memory keys < mem_lengths[b]
//            y  = x2 + drop(FFN(LN3(x2)))
//   post-LN: x1 = LN1(x + drop(SelfAttn(x))), x2 = LN2(x1 + ...), y = LN3(x2 + ...)
// The memory (the encoder's output) enters the keys/values projection as is.
// Dropout seeds: seed + 0 / + 1 self-attention probabilities / output, + 2 /
// + 3 encoder-decoder attention, + 4 / + 5 FFN activation / output.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "lightseq/decoder_layer_layout.h"
#include "lightseq/gemm.h"

namespace lightseq {

// `saved` (decoder_layer_saved_bytes): what the forward keeps for the
// backward; `workspace`: scratch of either call. Both 256-byte aligned.
size_t decoder_layer_workspace_bytes(DType dtype, const DecoderLayerConfig& c);

cudaError_t decoder_layer_fwd(DType dtype, const DecoderLayerConfig& c,
                              const DecoderLayerParams& w, const void* x, const void* memory,
                              const int32_t* mem_lengths, void* y, uint64_t seed, void* saved,
                              void* workspace, const Gemm& gemm, cudaStream_t stream);

// dx, dmemory and every gradient in `grads` are written (not accumulated).
cudaError_t decoder_layer_bwd(DType dtype, const DecoderLayerConfig& c,
                              const DecoderLayerParams& w, const void* x, const void* memory,
                              const int32_t* mem_lengths, const void* dy, void* dx,
                              void* dmemory, const DecoderLayerParams& grads, uint64_t seed,
                              const void* saved, void* workspace, const Gemm& gemm,
                              cudaStream_t stream);

}  // namespace lightseq
