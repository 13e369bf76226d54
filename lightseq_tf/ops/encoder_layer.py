"""The whole Transformer encoder layer as one op (LightseqEncoderLayer) and
its gradient (LightseqEncoderLayerGrad): on the GPU, cuda/layers/encoder_layer.cc
on TensorFlow's stream and BLAS; on the CPU, its C++ twin."""
import tensorflow as tf

from lightseq_tf.ops import _whole_layer
from lightseq_tf.ops._library import ops
from lightseq_tf.ops.dropout import _seed

# The order of the op's parameter inputs (and of the gradient's outputs).
PARAMS = ("ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias", "out_kernel", "out_bias",
          "ln2_gamma", "ln2_beta", "ffn1_kernel", "ffn1_bias", "ffn2_kernel", "ffn2_bias")


def encoder_layer(x, lengths, params, heads, pre_ln, activation="relu", attn_dropout=0.0,
                  act_dropout=0.0, hidden_dropout=0.0, seed=0, epsilon=1e-6, name=None):
    """y [B, L, H] of a Transformer encoder layer (NeurST's TransformerEncoderLayer).

    x: [B, L, H]; lengths: int [B], keys j >= lengths[b] masked (None: no
    padding); params: {name in PARAMS: tensor} in x's dtype (kernels [in, out]);
    seed: scalar int64, dropout streams seed + 0 attention probabilities, + 1
    attention output, + 2 FFN activation, + 3 FFN output.
    """
    _whole_layer.check_args(params, PARAMS, activation)
    with tf.name_scope(name or "lightseq_encoder_layer"):
        x = tf.convert_to_tensor(x)
        if lengths is None:
            lengths = tf.fill(tf.shape(x)[:1], tf.shape(x)[1])
        y, _ = ops().lightseq_encoder_layer(
            x, tf.cast(lengths, tf.int32), _seed(seed), *[params[p] for p in PARAMS],
            **_whole_layer.attrs(heads, pre_ln, activation, attn_dropout, act_dropout,
                                 hidden_dropout, epsilon))
        return y


@tf.RegisterGradient("LightseqEncoderLayer")
def _encoder_layer_grad(op, dy, _dsaved):
    x, lengths, seed = op.inputs[:3]
    params = op.inputs[3:]
    grads = ops().lightseq_encoder_layer_grad(dy, x, lengths, seed, *params, op.outputs[1],
                                              **_whole_layer.attrs_of(op))
    return [grads[0], None, None] + list(grads[1:])
