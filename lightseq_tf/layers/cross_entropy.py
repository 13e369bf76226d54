"""LSCrossEntropyLayer: label-smoothed cross-entropy over logits, one fused
op forward and one backward (no [tokens, vocab] float32 temporary)."""
import dataclasses

import tensorflow as tf

from lightseq_tf import config as cfg
from lightseq_tf.layers import _keras
from lightseq_tf.ops.cross_entropy import cross_entropy

REDUCTIONS = ("sum", "mean", "none")


@_keras.serializable
class LSCrossEntropyLayer(_keras.keras.layers.Layer):
    """(logits [..., V], targets [...]) -> (loss, nll), float32.

    reduction "sum" (LightSeq's): sums over non-padding tokens; "mean": those
    sums over the number of non-padding tokens; "none": per token (0 at
    padding). Soft targets: 1 - epsilon on the target, epsilon / (V - 1)
    elsewhere. Targets outside [0, V) that are not padding_idx raise
    InvalidArgumentError (CPU; see the README for the GPU).
    """

    get_config = _keras.ConfigMethod(cfg.cross_entropy_config)

    def __init__(self, config, reduction="sum", dtype=None, **kwargs):
        self.config = config if isinstance(config, cfg.CrossEntropyConfig) \
            else cfg.cross_entropy_config(**config)
        if reduction not in REDUCTIONS:
            raise ValueError("reduction must be one of %s, got %r" % (", ".join(REDUCTIONS),
                                                                       reduction))
        self.reduction = reduction
        super().__init__(dtype=_keras.resolve_dtype(dtype, self.config.fp16), **kwargs)

    def call(self, logits, targets):
        c = self.config
        logits = tf.convert_to_tensor(logits)
        targets = tf.convert_to_tensor(targets)
        with tf.control_dependencies([_keras.check_tokens(tf.size(targets), c.max_batch_tokens)]):
            loss, nll, sums = cross_entropy(logits, targets, c.epsilon, c.padding_idx)
        if self.reduction == "none":
            return loss, nll
        if self.reduction == "sum":
            return sums[0], sums[1]
        n = tf.maximum(sums[2], 1.0)
        return sums[0] / n, sums[1] / n

    def keras_config(self):
        base = _keras.keras.layers.Layer.get_config(self)
        base.update(config=dataclasses.asdict(self.config), reduction=self.reduction)
        return base
