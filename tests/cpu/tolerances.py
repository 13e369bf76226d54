"""Relative L2 error bounds ||out - ref|| / ||ref|| against float64 references
computed from the same (already rounded) inputs, one place for all CPU tests.

Each output is rounded to its storage dtype once after float32 arithmetic, so
the error is dominated by that rounding: unit roundoff u = 6.0e-8 (fp32),
4.9e-4 (fp16), 3.9e-3 (bf16). The relative L2 error of a rounded vector is
about u/sqrt(3); the bounds leave 2-4x headroom for float32 reductions over up
to 16k elements, and no more.
"""
import numpy as np
import tensorflow as tf

REL = {tf.float32: 1e-5, tf.float16: 1e-3, tf.bfloat16: 8e-3}


def rel_err(out, ref):
    out = np.asarray(tf.cast(out, tf.float64) if tf.is_tensor(out) else out, np.float64)
    ref = np.asarray(ref, np.float64)
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))
