"""LSTransformerEncoderLayer: a Transformer encoder layer (self-attention +
FFN, pre- or post-LN) over the fused ops, with NeurST's variable layout.

Variables (paths under the layer's name; NeurST's TransformerEncoderLayer
creates the same names and shapes, so checkpoints map one to one):
    self_attention_prepost_wrapper/ln/{gamma, beta}                       [H]
    self_attention_prepost_wrapper/self_attention/qkv_transform/{kernel [H, 3H], bias [3H]}
    self_attention_prepost_wrapper/self_attention/output_transform/{kernel [H, H], bias [H]}
    ffn_prepost_wrapper/ln/{gamma, beta}                                  [H]
    ffn_prepost_wrapper/ffn/dense1/{kernel [H, F], bias [F]}
    ffn_prepost_wrapper/ffn/dense2/{kernel [F, H], bias [H]}

It computes as the whole-layer op lightseq_tf.ops.encoder_layer where a GPU
runs it, and composed around TF's MatMul on the CPU (why, and how to
override: TransformerLayerBase).
"""
import tensorflow as tf

from lightseq_tf.layers import _keras
from lightseq_tf.layers import _transformer as tr
from lightseq_tf.ops.encoder_layer import encoder_layer


@_keras.serializable
class LSTransformerEncoderLayer(tr.TransformerLayerBase):
    """x [batch, length, hidden] -> same shape, in the layer's compute dtype.

    Keys at positions >= lengths[b] are masked (right padding, as NeurST
    pads); `lengths` int [batch], or a Keras mask [batch, length] (its count
    of True per row), or neither (no padding). Raises InvalidArgumentError
    for length > max_seq_len or batch * length > max_batch_tokens. Dropout
    streams: seed + 0 attention probabilities, + 1 attention output, + 2 FFN
    activation, + 3 FFN output (those of cuda/layers/encoder_layer.cc).
    """

    def build(self, input_shape=None):
        c = self.config
        h = c.hidden_size
        self.attention_block = tr.self_attention_block(h)
        self.ffn_block = tr.ffn_block(h, c.intermediate_size)
        self.attention_block.build(input_shape)
        self.ffn_block.build(input_shape)
        self.built = True

    def call(self, inputs, lengths=None, mask=None, training=None):
        x, checks = self._checked_input(inputs)
        with tf.control_dependencies(checks):
            seed = _keras.draw_seed()
        lens = tr.lengths_of(x, lengths, mask)
        return _keras.by_training(training, lambda train: self._forward(x, lens, seed, train))

    def _forward(self, x, lengths, seed, train):
        if self._use_whole_layer_op():
            return self._forward_op(x, lengths, seed, train)
        return self._forward_composed(x, lengths, seed, train)

    def _forward_composed(self, x, lengths, seed, train):
        sa = self.attention_block.parts["self_attention"]

        def attention(t, residual):
            q, k, v = tf.unstack(self._project(t, sa.parts["qkv_transform"], 3))
            return self._attend(q, k, v, lengths, False, sa.parts["output_transform"], residual,
                                seed, train)

        x1 = self._block(x, self.attention_block.parts["ln"], attention)
        return self._ffn(x1, self.ffn_block, seed + 2, train)

    def _forward_op(self, x, lengths, seed, train):
        attention, ffn = self.attention_block.parts, self.ffn_block.parts
        sa, dense = attention["self_attention"].parts, ffn["ffn"].parts
        params = dict(
            ln1_gamma=attention["ln"].gamma, ln1_beta=attention["ln"].beta,
            qkv_kernel=sa["qkv_transform"].kernel, qkv_bias=sa["qkv_transform"].bias,
            out_kernel=sa["output_transform"].kernel, out_bias=sa["output_transform"].bias,
            ln2_gamma=ffn["ln"].gamma, ln2_beta=ffn["ln"].beta,
            ffn1_kernel=dense["dense1"].kernel, ffn1_bias=dense["dense1"].bias,
            ffn2_kernel=dense["dense2"].kernel, ffn2_bias=dense["dense2"].bias)
        return encoder_layer(x, lengths, {k: self._w(v) for k, v in params.items()},
                             **self._op_attrs(train), seed=seed)
