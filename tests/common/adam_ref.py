"""numpy float32 Adam / AdamW step, op by op in the order of
cuda/include/lightseq/adam_step.h: the bit-exact reference for the CPU twin
(tests/cpu) and the CUDA kernel (tests/gpu)."""
import math

import numpy as np

F32 = np.float32


def numpy_adam(p, m, v, g, lr, b1, b2, eps, wd, step, adamw, grad_scale):
    """p, m, v: float32 arrays; g: grads already converted to float32 (exact
    for fp16/bf16). Returns the new (p, m, v)."""
    lr, b1, b2, eps, wd, scale = map(F32, (lr, b1, b2, eps, wd, grad_scale))
    step_size = F32(float(lr) / (1.0 - float(b1) ** step))  # double, rounded once
    bc2_sqrt = F32(math.sqrt(1.0 - float(b2) ** step))
    g = np.asarray(g, F32) / scale
    if wd != 0:
        if adamw:
            p = p - (lr * wd) * p
        else:
            g = g + wd * p
    m = b1 * m + (F32(1) - b1) * g
    v = b2 * v + (F32(1) - b2) * (g * g)
    d = np.sqrt(v) / bc2_sqrt + eps
    p = p - step_size * (m / d)
    return p, m, v


def differing_bits(a, b):
    """Indices where two float32 arrays differ in their bits (-0 != +0)."""
    a, b = np.ascontiguousarray(a, F32), np.ascontiguousarray(b, F32)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.flatnonzero(a.view(np.uint32) != b.view(np.uint32))
