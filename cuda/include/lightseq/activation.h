// Activations of the fused FFN epilogue and their derivatives, shared by the
// CUDA kernels and the CPU twins (float math, no CUDA headers needed).
#pragma once

#include <cmath>

#include "lightseq/host_device.h"

namespace lightseq {

enum class Activation : int { kRelu = 0, kGelu = 1, kGeluTanh = 2 };

// Names as the TF op attribute spells them.
inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kRelu: return "relu";
    case Activation::kGelu: return "gelu";
    case Activation::kGeluTanh: return "gelu_tanh";
  }
  return "unknown";
}

struct ActIdentity {
  static LIGHTSEQ_HD float f(float z) { return z; }
  static LIGHTSEQ_HD float df(float) { return 1.f; }
  static constexpr bool kNeedsInput = false;
};

struct ActRelu {
  static LIGHTSEQ_HD float f(float z) { return z > 0.f ? z : 0.f; }
  static LIGHTSEQ_HD float df(float z) { return z > 0.f ? 1.f : 0.f; }
  static constexpr bool kNeedsInput = true;
};

// Exact GELU: z * Phi(z), Phi the standard normal CDF.
struct ActGelu {
  static LIGHTSEQ_HD float f(float z) { return 0.5f * z * (1.f + erff(z * 0.70710678118654752f)); }
  static LIGHTSEQ_HD float df(float z) {
    const float cdf = 0.5f * (1.f + erff(z * 0.70710678118654752f));
    return cdf + z * 0.39894228040143268f * expf(-0.5f * z * z);
  }
  static constexpr bool kNeedsInput = true;
};

// tanh approximation of GELU (as in BERT and NeurST's "gelu").
struct ActGeluTanh {
  static LIGHTSEQ_HD float f(float z) {
    return 0.5f * z * (1.f + tanhf(0.79788456080286536f * (z + 0.044715f * z * z * z)));
  }
  static LIGHTSEQ_HD float df(float z) {
    const float t = tanhf(0.79788456080286536f * (z + 0.044715f * z * z * z));
    return 0.5f * (1.f + t) +
           0.5f * z * (1.f - t * t) * 0.79788456080286536f * (1.f + 0.134145f * z * z);
  }
  static constexpr bool kNeedsInput = true;
};

}  // namespace lightseq
