// Input limits of the CUDA kernels, shared with the CPU twins and the
// OpKernels' validation (this header needs no CUDA headers).
#pragma once

namespace lightseq {

// Largest hidden size LayerNorm accepts (the GPU kernels keep a row in registers).
constexpr int kLayerNormMaxHidden = 16384;

// Decoding attention (step_attention.h) keeps one query's scores in shared
// memory (float32) and a head in registers: keys per query and head_dim.
constexpr long long kStepAttentionMaxKeys = 8192;
constexpr int kStepAttentionMaxHeadDim = 256;

}  // namespace lightseq
