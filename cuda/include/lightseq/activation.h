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

// Exact GELU: z * Phi(z), Phi the standard normal CDF. Phi is computed as
// erfc(-z/sqrt(2))/2, not (1 + erf(z/sqrt(2)))/2: for z << 0 the latter
// cancels and loses every digit of the (small but nonzero) result.
struct ActGelu {
  static LIGHTSEQ_HD float f(float z) { return 0.5f * z * erfcf(-z * 0.70710678118654752f); }
  static LIGHTSEQ_HD float df(float z) {
    const float cdf = 0.5f * erfcf(-z * 0.70710678118654752f);
    return cdf + z * 0.39894228040143268f * expf(-0.5f * z * z);
  }
  static constexpr bool kNeedsInput = true;
};

// tanh approximation of GELU (as in BERT and NeurST's "gelu"):
// 0.5 z (1 + tanh(u)) with u = sqrt(2/pi) (z + 0.044715 z^3), written as
// z * sigmoid(2u), which is the same function without the cancellation of
// 1 + tanh(u) for u << 0. d/dz: s + 2 z s (1 - s) u'(z), s = sigmoid(2u).
struct ActGeluTanh {
  static LIGHTSEQ_HD float sig2u(float z) {
    const float u = 0.79788456080286536f * (z + 0.044715f * z * z * z);
    return 1.f / (1.f + expf(-2.f * u));
  }
  static LIGHTSEQ_HD float f(float z) { return z * sig2u(z); }
  static LIGHTSEQ_HD float df(float z) {
    const float s = sig2u(z);
    return s + 2.f * z * s * (1.f - s) * 0.79788456080286536f * (1.f + 0.134145f * z * z);
  }
  static constexpr bool kNeedsInput = true;
};

}  // namespace lightseq
