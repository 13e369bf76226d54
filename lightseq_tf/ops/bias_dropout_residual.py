"""y = residual + dropout(x + bias) (op LightseqBiasDropoutResidual)."""
import tensorflow as tf

from lightseq_tf.ops._library import ops
from lightseq_tf.ops.dropout import _seed


def bias_dropout_residual(x, bias, residual, rate, seed, name=None):
    """x, residual: [..., H]; bias: [H]; seed: scalar int64; 0 <= rate < 1."""
    with tf.name_scope(name or "lightseq_bias_dropout_residual"):
        return ops().lightseq_bias_dropout_residual(
            tf.convert_to_tensor(x), tf.convert_to_tensor(bias), tf.convert_to_tensor(residual),
            _seed(seed), rate=float(rate))


@tf.RegisterGradient("LightseqBiasDropoutResidual")
def _bias_dropout_residual_grad(op, dy):
    dx, dbias = ops().lightseq_bias_dropout_residual_grad(dy, op.inputs[3],
                                                          rate=op.get_attr("rate"))
    return dx, dbias, dy, None
