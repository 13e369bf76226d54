// LIGHTSEQ_HD marks math shared verbatim by the CUDA kernels and the CPU
// twins, so both compute the same function (the Philox stream, activations).
#pragma once

#if defined(__CUDACC__)
#define LIGHTSEQ_HD __host__ __device__ __forceinline__
#else
#define LIGHTSEQ_HD inline
#endif
