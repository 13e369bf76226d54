"""LSAdam: Keras' Adam with its per-variable update replaced by the fused
LightseqMultiTensorAdam op (one op per gradient dtype and variable device
instead of one or more per variable). The class subclasses the Adam of the
running Keras (tf_keras' legacy OptimizerV2 Adam, NeurST's Keras 2; or
Keras 3's Adam) and keeps its slots, config, hyper-parameters, schedules,
loss scaling, clipping and checkpoints.

Fused only where the op computes exactly Keras' update: float32 variables,
float32/float16/bfloat16 gradients, no AMSGrad, the default tf.distribute
strategy (under another strategy the update runs per replica and variable
inside the strategy's update machinery, which this op does not plug into
yet). Everything else takes the parent's per-variable path, unchanged.
"""
import math
import numbers

import tensorflow as tf

from lightseq_tf.layers._keras import KERAS3, keras, serializable
from lightseq_tf.ops.adam import multi_tensor_adam

FUSED_GRAD_DTYPES = (tf.float32, tf.float16, tf.bfloat16)


def _fusable(grad, var):
    return tf.as_dtype(var.dtype) == tf.float32 and grad.dtype in FUSED_GRAD_DTYPES


def _op_epsilon(epsilon, beta_2, step):
    """Keras' epsilon as the op's.

    Keras: p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps_k); the op (torch's
    placement): p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps_op). Multiply
    the op's numerator and denominator by sqrt(bc2): lr * sqrt(bc2) / bc1 * m
    / (sqrt(v) + eps_op * sqrt(bc2)), i.e. Keras' update for eps_op = eps_k /
    sqrt(bc2), bc2 = 1 - beta_2^step. Computed in float64 from the float32
    beta_2, as the op derives its sqrt(bc2), so eps_op * sqrt(bc2) is eps_k
    to float32 rounding.
    """
    beta_2 = tf.cast(tf.cast(beta_2, tf.float32), tf.float64)
    bc2 = 1.0 - tf.pow(beta_2, tf.cast(step, tf.float64))
    return tf.cast(tf.cast(epsilon, tf.float64) / tf.sqrt(bc2), tf.float32)


def _fused_adam(grads, variables, ms, vs, lr, beta_1, beta_2, epsilon, step):
    """Keras' Adam step over tf.Variables with fusable grads. The op wrapper
    splits by gradient dtype; split by device here too, since one op cannot
    update resources on different devices (e.g. an embedding pinned to CPU)."""
    epsilon = _op_epsilon(epsilon, beta_2, step)
    by_device = {}
    for i, var in enumerate(variables):
        by_device.setdefault(var.device, []).append(i)
    updates = []
    for device, idx in by_device.items():
        with tf.device(device):
            updates.append(multi_tensor_adam(
                [variables[i] for i in idx], [ms[i] for i in idx], [vs[i] for i in idx],
                [grads[i] for i in idx], lr, beta_1, beta_2, epsilon, 0.0, step))
    return tf.group(*updates)


def _check_epsilon(epsilon):
    # The op requires epsilon > 0 (it divides by sqrt(v) + epsilon with v = 0 possible).
    if isinstance(epsilon, numbers.Real) and not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"LSAdam needs a finite epsilon > 0, got {epsilon!r}")


if KERAS3:
    def _tf_variable(v):
        return v.value if isinstance(v, keras.Variable) else v

    @serializable
    class LSAdam(keras.optimizers.Adam):
        """keras.optimizers.Adam (same arguments, slots and config) whose Adam
        math runs as one fused op per gradient dtype. The base class still
        does loss-scale unscaling, clipping, weight decay (AdamW-style, as for
        Adam(weight_decay=...)), gradient accumulation, constraints and EMA;
        only the per-variable update_step loop is replaced.

        IndexedSlices gradients are applied as their dense sum. Stock Keras 3
        Adam instead squares the slices of a repeated row before summing
        them into v (a^2 + b^2, not (a + b)^2), so the two differ on such rows."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _check_epsilon(self.epsilon)

        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            if self.amsgrad or tf.distribute.has_strategy():
                return super()._backend_update_step(grads, trainable_variables, learning_rate)
            pairs = list(zip(grads, trainable_variables))
            fuse = [_fusable(g, v) for g, v in pairs]
            fused = [gv for gv, f in zip(pairs, fuse) if f]
            rest = [gv for gv, f in zip(pairs, fuse) if not f]
            if fused:
                index = [self._get_variable_index(v) for _, v in fused]
                _fused_adam([g for g, _ in fused], [_tf_variable(v) for _, v in fused],
                            [_tf_variable(self._momentums[i]) for i in index],
                            [_tf_variable(self._velocities[i]) for i in index],
                            learning_rate, self.beta_1, self.beta_2, self.epsilon,
                            self.iterations + 1)
            if rest:
                super()._backend_update_step([g for g, _ in rest], [v for _, v in rest],
                                             learning_rate)
else:
    @serializable
    class LSAdam(keras.optimizers.legacy.Adam):
        """tf_keras.optimizers.legacy.Adam (same arguments, "m"/"v" slots,
        hyper-parameters, get_config/from_config, LossScaleOptimizer support)
        whose dense and sparse updates run as one fused op per gradient dtype.
        IndexedSlices gradients are applied densely, as Keras' sparse Adam
        also decays every row's moments."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _check_epsilon(self.epsilon)

        # Overridden below apply_gradients, which still aggregates, clips and
        # prepares; this is the per-variable loop (then iterations += 1).
        def _distributed_apply(self, distribution, grads_and_vars, apply_state, name):
            if self.amsgrad or tf.distribute.has_strategy():
                return super()._distributed_apply(distribution, grads_and_vars, apply_state, name)
            # Constrained variables keep the parent's path, which applies the
            # constraint (or rejects it for sparse gradients) after the update.
            fuse = [_fusable(g, v) and v.constraint is None for g, v in grads_and_vars]
            fused = [gv for gv, f in zip(grads_and_vars, fuse) if f]
            rest = [gv for gv, f in zip(grads_and_vars, fuse) if not f]
            updates = []
            if fused:
                with tf.name_scope(name or self._name):
                    updates.append(_fused_adam(
                        [g for g, _ in fused], [v for _, v in fused],
                        [self.get_slot(v, "m") for _, v in fused],
                        [self.get_slot(v, "v") for _, v in fused],
                        self._decayed_lr(tf.float32), self._get_hyper("beta_1", tf.float32),
                        self._get_hyper("beta_2", tf.float32), self.epsilon,
                        self.iterations + 1))
            # The parent updates the rest and then increments `iterations`,
            # after the fused update has read it.
            with tf.control_dependencies(updates):
                return super()._distributed_apply(distribution, rest, apply_state, name)
