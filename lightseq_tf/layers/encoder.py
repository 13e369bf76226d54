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
    of True per row), or neither (no padding). `lengths` [batch or 1, length]
    gives each query its own key limit (a monotonic encoder's causal-and-
    padding mask: min(lengths[b], i + 1)); such calls compose the fused ops.
    `cache` (create_internal_cache, tiled): NeurST's streaming encoder; the
    new positions' keys/values are appended and `lengths` count over all.
    Raises InvalidArgumentError for length > max_seq_len or batch * length > max_batch_tokens. Dropout
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

    def call(self, inputs, lengths=None, mask=None, cache=None, training=None):
        past, past_checks = (None, []) if cache is None else self._past(cache, inputs)
        x, checks = self._checked_input(inputs, length_limit_of=None if past is None else
                                        tf.shape(past["keys"])[1] + tf.shape(inputs)[1])
        with tf.control_dependencies(checks + past_checks):
            seed = _keras.draw_seed()
        if past is None:
            lens = tr.lengths_of(x, lengths, mask)
        elif mask is not None:
            raise ValueError("with a cache, give `lengths` over the cached + new keys, "
                             "not a mask of the new positions")
        else:  # by default a new chunk sees every key, cached or new
            lens = tf.cast(lengths, tf.int32) if lengths is not None else tf.fill(
                tf.shape(x)[:1], tf.shape(past["keys"])[1] + tf.shape(x)[1])
            y, new_past = self._forward_composed(x, lens, seed, training is True, past)
            self._store_cache(cache, new_past)
            return y
        return _keras.by_training(training, lambda train: self._forward(x, lens, seed, train))

    def create_internal_cache(self):
        """NeurST's streaming-encoder cache (TransformerEncoderLayer's): empty
        self-attention keys/values [0, heads, head_dim], tiled by the caller."""
        return self._self_attention_cache(0)

    def _forward(self, x, lengths, seed, train):
        # The whole-layer op takes one key length per sentence.
        if lengths.shape.rank == 1 and self._use_whole_layer_op():
            return self._forward_op(x, lengths, seed, train)
        return self._forward_composed(x, lengths, seed, train)

    def _forward_composed(self, x, lengths, seed, train, past=None):
        sa = self.attention_block.parts["self_attention"]
        new_past = {}

        def attention(t, residual):
            q, k, v = tf.unstack(self._project(t, sa.parts["qkv_transform"], 3))
            if past is not None:
                k, v = tr.append_to_cache(past, k, v, new_past)
            return self._attend(q, k, v, lengths, False, sa.parts["output_transform"], residual,
                                seed, train)

        x1 = self._block(x, self.attention_block.parts["ln"], attention)
        y = self._ffn(x1, self.ffn_block, seed + 2, train)
        return (y, new_past) if past is not None else y

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
