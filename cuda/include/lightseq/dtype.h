// Element types understood by the framework-free CUDA API.
//
// Launchers take untyped pointers plus one of these tags (the TransformerEngine
// style): the C++ boundary stays free of framework and cuda_fp16 types, so the
// TF OpKernels (compiled by g++) and the pybind11 harness share one API.
#pragma once

namespace lightseq {

enum class DType : int {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
};

inline int dtype_size(DType t) { return t == DType::kFloat32 ? 4 : 2; }

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
  }
  return "unknown";
}

}  // namespace lightseq
