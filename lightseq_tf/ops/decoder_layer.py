"""The whole Transformer decoder layer over all target positions at once (op
LightseqDecoderLayer) and its gradient (LightseqDecoderLayerGrad): on the
GPU, cuda/layers/decoder_layer.cc on TensorFlow's stream and BLAS; on the
CPU, its C++ twin. Incremental decoding (a key/value cache) is
LightseqDecoderStep (decoder_step.py)."""
import tensorflow as tf

from lightseq_tf.ops import _whole_layer
from lightseq_tf.ops._library import ops
from lightseq_tf.ops.dropout import _seed

# The order of the op's parameter inputs (and of the gradient's outputs).
PARAMS = ("ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias", "out_kernel", "out_bias",
          "ln2_gamma", "ln2_beta", "q_kernel", "q_bias", "kv_kernel", "kv_bias",
          "cross_out_kernel", "cross_out_bias",
          "ln3_gamma", "ln3_beta", "ffn1_kernel", "ffn1_bias", "ffn2_kernel", "ffn2_bias")


def decoder_layer(x, memory, memory_lengths, params, heads, pre_ln, activation="relu",
                  attn_dropout=0.0, act_dropout=0.0, hidden_dropout=0.0, seed=0, epsilon=1e-6,
                  name=None):
    """y [B, L, H] of a Transformer decoder layer (NeurST's TransformerDecoderLayer).

    x: [B, L, H] (causal self-attention); memory: [B, S, H], keys j >=
    memory_lengths[b] masked (None: no padding); params: {name in PARAMS:
    tensor} in x's dtype (kernels [in, out]); seed: scalar int64, dropout
    streams seed + 0 / + 1 self-attention probabilities / output, + 2 / + 3
    encoder-decoder attention, + 4 / + 5 FFN activation / output.
    """
    _whole_layer.check_args(params, PARAMS, activation)
    with tf.name_scope(name or "lightseq_decoder_layer"):
        x, memory = tf.convert_to_tensor(x), tf.convert_to_tensor(memory)
        if memory_lengths is None:
            memory_lengths = tf.fill(tf.shape(memory)[:1], tf.shape(memory)[1])
        y, _ = ops().lightseq_decoder_layer(
            x, memory, tf.cast(memory_lengths, tf.int32), _seed(seed),
            *[params[p] for p in PARAMS],
            **_whole_layer.attrs(heads, pre_ln, activation, attn_dropout, act_dropout,
                                 hidden_dropout, epsilon))
        return y


@tf.RegisterGradient("LightseqDecoderLayer")
def _decoder_layer_grad(op, dy, _dsaved):
    x, memory, lengths, seed = op.inputs[:4]
    grads = ops().lightseq_decoder_layer_grad(dy, x, memory, lengths, seed, *op.inputs[4:],
                                              op.outputs[1],
                                              **_whole_layer.attrs_of(op))
    return [grads[0], grads[1], None, None] + list(grads[2:])
