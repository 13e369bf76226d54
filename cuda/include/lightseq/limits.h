// Input limits of the CUDA kernels, shared with the CPU twins and the
// OpKernels' validation (this header needs no CUDA headers).
#pragma once

namespace lightseq {

// Largest hidden size LayerNorm accepts (the GPU kernels keep a row in registers).
constexpr int kLayerNormMaxHidden = 16384;

}  // namespace lightseq
