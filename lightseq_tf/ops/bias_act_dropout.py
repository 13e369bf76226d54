"""y = dropout(activation(x + bias)) (op LightseqBiasActDropout)."""
import tensorflow as tf

from lightseq_tf.ops._library import ops
from lightseq_tf.ops.dropout import _seed

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


def bias_act_dropout(x, bias, rate, seed, activation="relu", name=None):
    """x: [..., H]; bias: [H]; activation: relu | gelu (exact, erf) | gelu_tanh
    (tanh approximation); seed: scalar int64; 0 <= rate < 1."""
    if activation not in ACTIVATIONS:
        raise ValueError("activation must be one of %s, got %r" % (ACTIVATIONS, activation))
    with tf.name_scope(name or "lightseq_bias_act_dropout"):
        return ops().lightseq_bias_act_dropout(
            tf.convert_to_tensor(x), tf.convert_to_tensor(bias), _seed(seed),
            activation=activation, rate=float(rate))


@tf.RegisterGradient("LightseqBiasActDropout")
def _bias_act_dropout_grad(op, dy):
    x, bias, seed = op.inputs
    dx, dbias = ops().lightseq_bias_act_dropout_grad(
        dy, x, bias, seed, activation=op.get_attr("activation"), rate=op.get_attr("rate"))
    return dx, dbias, None
