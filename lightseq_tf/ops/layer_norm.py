"""Fused LayerNorm over the last axis (op LightseqLayerNorm) and its gradient."""
import tensorflow as tf

from lightseq_tf.ops._library import ops


def layer_norm(x, gamma, beta, epsilon=1e-6, name=None):
    """y = (x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis.

    x: [..., H] (rank >= 2, 1 <= H <= 16384), float32/float16/bfloat16;
    gamma, beta: [H] of x's dtype; epsilon > 0. Statistics are float32.
    """
    with tf.name_scope(name or "lightseq_layer_norm"):
        x = tf.convert_to_tensor(x)
        gamma = tf.convert_to_tensor(gamma)
        beta = tf.convert_to_tensor(beta)
        y, _, _ = ops().lightseq_layer_norm(x, gamma, beta, epsilon=float(epsilon))
        return y


@tf.RegisterGradient("LightseqLayerNorm")
def _layer_norm_grad(op, dy, unused_dmean, unused_drstd):
    # mean and rstd are the statistics saved for this gradient, not model
    # outputs: they are treated as constants (like tf.stop_gradient). TF hands
    # zeros for them whenever they are unused, so honouring them would cost a
    # full extra pass in every training step for nothing.
    x, gamma, _ = op.inputs
    _, mean, rstd = op.outputs
    return ops().lightseq_layer_norm_grad(dy, x, mean, rstd, gamma)
