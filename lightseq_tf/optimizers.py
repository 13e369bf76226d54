"""LSAdam: Keras' Adam with its per-variable update replaced by the fused
LightseqMultiTensorAdam op (one op per gradient dtype and variable device
instead of one or more per variable). The class subclasses the Adam of the
running Keras (tf_keras' legacy OptimizerV2 Adam, NeurST's Keras 2; or
Keras 3's Adam) and keeps its slots, config, hyper-parameters, schedules,
loss scaling, clipping and checkpoints.

Fused only where the op computes exactly Keras' update: float32 variables,
float32/float16/bfloat16 gradients, no AMSGrad. Under a mirroring
tf.distribute strategy (MirroredStrategy, MultiWorkerMirroredStrategy,
OneDeviceStrategy) the fused op runs once per local replica on that replica's
copies of the variables and slots, with the gradients the strategy has
already all-reduced, so every copy takes the same step. Other strategies
(parameter servers, TPUs) and everything else take the parent's per-variable
path, unchanged.
"""
import math
import numbers

import tensorflow as tf

from lightseq_tf.layers._keras import KERAS3, keras, serializable
from lightseq_tf.ops.adam import multi_tensor_adam

FUSED_GRAD_DTYPES = (tf.float32, tf.float16, tf.bfloat16)


def _fusable(grad, var):
    if isinstance(grad, tf.distribute.DistributedValues):  # cross-replica: one per replica
        grad = grad.values[0]
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


_MIRRORING = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy,
              tf.distribute.OneDeviceStrategy)


def _fusable_strategy(distribution):
    """The default strategy or one that keeps a full copy of every variable per
    replica (updated in the cross-replica context with reduced gradients)."""
    return not tf.distribute.has_strategy() or isinstance(distribution, _MIRRORING)


def _fused_adam_per_replica(distribution, grads, variables, ms, vs, *hyper):
    """_fused_adam on each local replica's copies (one copy under the default
    strategy): experimental_local_results gives a mirrored variable's (or an
    all-reduced gradient's) per-replica components, in replica order."""
    local = distribution.experimental_local_results
    copies = [[local(t) for t in ts] for ts in (grads, variables, ms, vs)]
    replicas = len(copies[1][0])
    return tf.group(*[
        _fused_adam(*[[c[i] if len(c) > 1 else c[0] for c in ts] for ts in copies], *hyper)
        for i in range(replicas)])


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

        # Keras' per-variable loop (cross-replica context, gradients reduced);
        # the base class then increments `iterations`.
        def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
            if self.amsgrad or not _fusable_strategy(distribution):
                return super()._distributed_tf_update_step(distribution, grads_and_vars,
                                                           learning_rate)
            fuse = [_fusable(g, v) for g, v in grads_and_vars]
            fused = [gv for gv, f in zip(grads_and_vars, fuse) if f]
            rest = [gv for gv, f in zip(grads_and_vars, fuse) if not f]
            if fused:
                index = [self._get_variable_index(v) for _, v in fused]
                _fused_adam_per_replica(
                    distribution, [g for g, _ in fused], [_tf_variable(v) for _, v in fused],
                    [_tf_variable(self._momentums[i]) for i in index],
                    [_tf_variable(self._velocities[i]) for i in index],
                    learning_rate, self.beta_1, self.beta_2, self.epsilon, self.iterations + 1)
            if rest:
                super()._distributed_tf_update_step(distribution, rest, learning_rate)
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
            if self.amsgrad or not _fusable_strategy(distribution):
                return super()._distributed_apply(distribution, grads_and_vars, apply_state, name)
            # Constrained variables keep the parent's path, which applies the
            # constraint (or rejects it for sparse gradients) after the update.
            fuse = [_fusable(g, v) and v.constraint is None for g, v in grads_and_vars]
            fused = [gv for gv, f in zip(grads_and_vars, fuse) if f]
            rest = [gv for gv, f in zip(grads_and_vars, fuse) if not f]
            updates = []
            if fused:
                with tf.name_scope(name or self._name):
                    updates.append(_fused_adam_per_replica(
                        distribution, [g for g, _ in fused], [v for _, v in fused],
                        [self.get_slot(v, "m") for _, v in fused],
                        [self.get_slot(v, "v") for _, v in fused],
                        self._decayed_lr(tf.float32), self._get_hyper("beta_1", tf.float32),
                        self._get_hyper("beta_2", tf.float32), self.epsilon,
                        self.iterations + 1))
            # The parent updates the rest and then increments `iterations`,
            # after the fused update has read it.
            with tf.control_dependencies(updates):
                return super()._distributed_apply(distribution, rest, apply_state, name)
