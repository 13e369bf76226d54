// One Adam / AdamW step: hyper-parameters, the float32 scalars derived from
// them on the host, and the per-element order of operations. Shared by the
// CUDA launcher (lightseq/adam.h) and the CPU twin, so both derive the same
// float32 constants; neither CUDA nor a framework is needed to include it.
//
// Per element, every operation a float32 op rounded to nearest (no fused
// multiply-add), in this order:
//   g  = grad / grad_scale                      (unscale; grad read as float32)
//   if weight_decay != 0:
//     AdamW (decoupled): p = p - lr_wd * p      (lr_wd = f32(lr * weight_decay))
//     Adam (L2):         g = g + weight_decay * p
//   m  = beta1 * m + one_minus_beta1 * g
//   v  = beta2 * v + one_minus_beta2 * (g * g)
//   d  = sqrt(v) / bc2_sqrt + eps
//   p  = p - step_size * (m / d)
// with step_size = f32(lr / (1 - beta1^step)) and bc2_sqrt =
// f32(sqrt(1 - beta2^step)) computed in double. This is torch.optim.Adam /
// AdamW's formula (eps added after dividing sqrt(v) by sqrt(bias correction)),
// in float32 instead of torch's mixed float/double scalar arithmetic; numpy
// reproduces it bit for bit (tests/common/adam_ref.py), denormals included
// (the CPU twin lifts TF's flush-to-zero; the GPU kernel never flushes).
#pragma once

#include <cmath>
#include <cstdint>

namespace lightseq {

struct AdamHyper {
  float lr, beta1, beta2, eps, weight_decay;
  bool adamw;        // decoupled weight decay (AdamW) instead of L2 (Adam)
  int64_t step;      // 1 for the first update
  float grad_scale;  // grads are divided by it (loss scaling); 1 for none
};

struct AdamScalars {
  float grad_scale, weight_decay, lr_wd, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
      step_size, bc2_sqrt;
  int adamw;
};

// Ranges both the TF op and the launcher accept (the op reports which one failed).
inline bool adam_hyper_valid(const AdamHyper& h) {
  auto finite = [](float x) { return std::isfinite(x); };
  return finite(h.lr) && h.lr >= 0.f && h.beta1 >= 0.f && h.beta1 < 1.f && h.beta2 >= 0.f &&
         h.beta2 < 1.f && finite(h.eps) && h.eps > 0.f && finite(h.weight_decay) &&
         h.weight_decay >= 0.f && h.step >= 1 && finite(h.grad_scale) && h.grad_scale > 0.f;
}

inline AdamScalars adam_scalars(const AdamHyper& h) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(h.step));
  AdamScalars s;
  s.grad_scale = h.grad_scale;
  s.weight_decay = h.weight_decay;
  s.lr_wd = h.lr * h.weight_decay;  // float32 product
  s.beta1 = h.beta1;
  s.one_minus_beta1 = 1.f - h.beta1;
  s.beta2 = h.beta2;
  s.one_minus_beta2 = 1.f - h.beta2;
  s.eps = h.eps;
  s.step_size = static_cast<float>(static_cast<double>(h.lr) / bc1);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  s.adamw = h.adamw ? 1 : 0;
  return s;
}

}  // namespace lightseq
