"""Inverted dropout with stateless Philox masks (op LightseqDropout)."""
import tensorflow as tf

from lightseq_tf.ops._library import ops


def _seed(seed):
    return tf.convert_to_tensor(seed, tf.int64)


def dropout(x, rate, seed, name=None):
    """y = x / (1 - rate) where Philox(seed, element index) keeps, else 0.

    seed: scalar int64 (tensor or int); the same seed gives the same mask on
    CPU and GPU, eagerly or in a graph. 0 <= rate < 1.
    """
    with tf.name_scope(name or "lightseq_dropout"):
        return ops().lightseq_dropout(tf.convert_to_tensor(x), _seed(seed), rate=float(rate))


@tf.RegisterGradient("LightseqDropout")
def _dropout_grad(op, dy):
    # The mask is a pure function of (seed, index): applying the op to dy with
    # the same seed multiplies by exactly the forward's mask and scale.
    return ops().lightseq_dropout(dy, op.inputs[1], rate=op.get_attr("rate")), None
