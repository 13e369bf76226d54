"""Fused multi-tensor Adam / AdamW step (op LightseqMultiTensorAdam)."""
import tensorflow as tf

from lightseq_tf.ops._library import ops

tf.no_gradient("LightseqMultiTensorAdam")  # an update, not a function of its inputs


def _handle(v, what):
    handle = getattr(v, "handle", None)
    if handle is None or handle.dtype != tf.resource:
        raise TypeError(f"{what} must be resource variables (tf.Variable), got {type(v).__name__}")
    return handle


def multi_tensor_adam(variables, ms, vs, grads, lr, beta1, beta2, epsilon, weight_decay, step,
                      adamw=False, grad_scale=1.0, found_inf=None, name=None):
    """One Adam (adamw=False: weight_decay is an L2 term added to the
    gradient) or AdamW (adamw=True: decoupled decay p -= lr * weight_decay * p)
    step over lists of float32 variables and their float32 moments, in place.

    grads: one per variable, same shapes; float32, float16 or bfloat16 (one op
    per grad dtype). They are divided by grad_scale (loss scaling) first.
    step: the 1-based step of the bias corrections 1 - beta**step (e.g.
    optimizer.iterations + 1). found_inf: optional float32 scalar tensor; when
    non-zero the step changes nothing (no host sync: the GPU kernel reads it).
    lr, betas, epsilon, weight_decay, grad_scale may be Python numbers or
    scalar tensors. Exact float32 order of operations:
    cuda/include/lightseq/adam_step.h. Returns the update op(s) as a group.
    """
    variables, ms, vs, grads = list(variables), list(ms), list(vs), list(grads)
    if not len(variables) == len(ms) == len(vs) == len(grads):
        raise ValueError("variables, ms, vs and grads must have equal lengths, got "
                         f"{len(variables)}, {len(ms)}, {len(vs)}, {len(grads)}")
    with tf.name_scope(name or "lightseq_multi_tensor_adam"):
        if not variables:
            return tf.no_op()
        f32 = lambda x: tf.cast(x, tf.float32)  # noqa: E731
        scalars = dict(lr=f32(lr), beta1=f32(beta1), beta2=f32(beta2), epsilon=f32(epsilon),
                       weight_decay=f32(weight_decay), step=tf.cast(step, tf.int64),
                       grad_scale=f32(grad_scale),
                       found_inf=f32(0.0 if found_inf is None else found_inf))
        # IndexedSlices (embedding grads) become dense: the kernel updates
        # every row anyway (Adam decays m and v of untouched rows too).
        grads = [tf.convert_to_tensor(g) for g in grads]
        by_dtype = {}
        for i, g in enumerate(grads):
            by_dtype.setdefault(g.dtype, []).append(i)
        updates = []
        for idx in by_dtype.values():
            updates.append(ops().lightseq_multi_tensor_adam(
                var=[_handle(variables[i], "variables") for i in idx],
                m=[_handle(ms[i], "ms") for i in idx], v=[_handle(vs[i], "vs") for i in idx],
                grad=[grads[i] for i in idx], adamw=bool(adamw), **scalars))
        return tf.group(*updates)
