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

This version composes the fused kernels (LayerNorm, QKV bias + head split,
attention softmax + mask + dropout, head merge, bias + dropout + residual,
bias + activation + dropout) with TensorFlow's GEMMs; the whole-layer
forward/backward ops of the design replace the composition behind the same
variables and call signature.
"""
import dataclasses
import math

import tensorflow as tf

from lightseq_tf import config as cfg
from lightseq_tf.layers import _keras
from lightseq_tf.ops.bias_act_dropout import bias_act_dropout
from lightseq_tf.ops.bias_dropout_residual import bias_dropout_residual
from lightseq_tf.ops.heads import merge_heads, split_heads
from lightseq_tf.ops.layer_norm import layer_norm
from lightseq_tf.ops.softmax import attn_softmax

keras = _keras.keras


class _Weights(keras.layers.Layer):
    """A named scope that owns float32 variables (the path NeurST's nested
    layers give them); children are further _Weights."""

    def __init__(self, name, specs=(), parts=(), **kwargs):
        super().__init__(name=name, **kwargs)
        self._specs = list(specs)
        self.parts = {c.name: c for c in parts}
        for c in parts:  # tracked attributes: nested variable paths
            setattr(self, c.name, c)

    def build(self, input_shape=None):
        # Keras 3 scopes variable paths by the layer nesting itself; tf_keras
        # names variables by tf.name_scope, which only __call__ would enter.
        with _keras.variable_scope(self.name):
            for name, shape, init in self._specs:
                setattr(self, name, _keras.add_float32_weight(self, name, shape, init))
            for c in self.parts.values():
                c.build(input_shape)
        self.built = True


def _ln(name, h):
    return _Weights(name, [("gamma", [h], "ones"), ("beta", [h], "zeros")])


def _dense(name, n_in, n_out):
    # NeurST's defaults: glorot_uniform kernels, zero biases.
    return _Weights(name, [("kernel", [n_in, n_out], "glorot_uniform"),
                           ("bias", [n_out], "zeros")])


@_keras.serializable
class LSTransformerEncoderLayer(keras.layers.Layer):
    """x [batch, length, hidden] -> same shape, in the layer's compute dtype.

    Keys at positions >= lengths[b] are masked (right padding, as NeurST
    pads); `lengths` int [batch], or a Keras mask [batch, length] (its count
    of True per row), or neither (no padding). Raises InvalidArgumentError
    for length > max_seq_len or batch * length > max_batch_tokens.
    """

    get_config = _keras.ConfigMethod(cfg.transformer_config)

    def __init__(self, config, epsilon=1e-6, dtype=None, **kwargs):
        self.config = config if isinstance(config, cfg.TransformerConfig) \
            else cfg.transformer_config(**config)
        self.epsilon = float(epsilon)
        super().__init__(dtype=_keras.resolve_dtype(dtype, self.config.fp16), **kwargs)
        self.supports_masking = True

    def build(self, input_shape=None):
        c = self.config
        h, f = c.hidden_size, c.intermediate_size
        self.attention_block = _Weights("self_attention_prepost_wrapper", parts=[
            _ln("ln", h),
            _Weights("self_attention", parts=[_dense("qkv_transform", h, 3 * h),
                                                 _dense("output_transform", h, h)])])
        self.ffn_block = _Weights("ffn_prepost_wrapper", parts=[
            _ln("ln", h),
            _Weights("ffn", parts=[_dense("dense1", h, f), _dense("dense2", f, h)])])
        self.attention_block.build(input_shape)
        self.ffn_block.build(input_shape)
        self.built = True

    def _lengths(self, x, lengths, mask):
        if lengths is not None:
            return tf.cast(lengths, tf.int32)
        if mask is not None:
            return tf.reduce_sum(tf.cast(mask, tf.int32), axis=-1)
        return tf.fill(tf.shape(x)[:1], tf.shape(x)[1])

    def call(self, inputs, lengths=None, mask=None, training=None):
        c = self.config
        x = tf.cast(inputs, self.compute_dtype)
        if x.shape.rank != 3:
            raise ValueError("inputs must be [batch, length, hidden], got shape %s" % x.shape)
        if x.shape[-1] is not None and x.shape[-1] != c.hidden_size:
            raise ValueError("inputs' last dimension must be hidden_size = %d, got %d"
                             % (c.hidden_size, x.shape[-1]))
        shape = tf.shape(x)
        checks = [
            _keras.check_tokens(shape[0] * shape[1], c.max_batch_tokens),
            tf.debugging.assert_less_equal(shape[1], c.max_seq_len,
                                           message="length exceeds max_seq_len = %d"
                                           % c.max_seq_len)]
        with tf.control_dependencies(checks):
            seed = _keras.draw_seed()
        lens = self._lengths(x, lengths, mask)
        return _keras.by_training(training, lambda train: self._forward(x, lens, seed, train))

    def _w(self, v):
        return tf.cast(v, self.compute_dtype)

    def _forward(self, x, lengths, seed, train):
        c = self.config
        att, ffn = self.attention_block, self.ffn_block
        sa = att.parts["self_attention"]
        qkv_w, out_w = sa.parts["qkv_transform"], sa.parts["output_transform"]
        ln1, ln2 = att.parts["ln"], ffn.parts["ln"]
        d1, d2 = ffn.parts["ffn"].parts["dense1"], ffn.parts["ffn"].parts["dense2"]
        p_att = c.attn_prob_dropout_ratio if train else 0.0
        p_act = c.activation_dropout_ratio if train else 0.0
        p_hid = c.hidden_dropout_ratio if train else 0.0
        b, length = tf.shape(x)[0], tf.shape(x)[1]
        h, heads = c.hidden_size, c.nhead

        def norm(t, ln):
            return layer_norm(t, self._w(ln.gamma), self._w(ln.beta), self.epsilon)

        def matmul(t2d, dense):
            return tf.matmul(t2d, self._w(dense.kernel))

        # Self-attention block.
        a_in = norm(x, ln1) if c.pre_layer_norm else x
        qkv = tf.reshape(matmul(tf.reshape(a_in, [-1, h]), qkv_w), [b, length, 3 * h])
        qkv = split_heads(qkv, self._w(qkv_w.bias), heads, 3)  # [3, B, heads, L, d]
        scores = tf.matmul(qkv[0], qkv[1], transpose_b=True)
        probs = attn_softmax(scores, lengths, scale=1.0 / math.sqrt(h // heads), rate=p_att,
                             seed=seed)
        context = tf.reshape(merge_heads(tf.matmul(probs, qkv[2])), [-1, h])
        out = tf.reshape(matmul(context, out_w), [b, length, h])
        x1 = bias_dropout_residual(out, self._w(out_w.bias), x, p_hid, seed + 1)
        if not c.pre_layer_norm:
            x1 = norm(x1, ln1)

        # FFN block.
        f_in = norm(x1, ln2) if c.pre_layer_norm else x1
        inner = matmul(tf.reshape(f_in, [-1, h]), d1)
        inner = bias_act_dropout(inner, self._w(d1.bias), p_act, seed + 2, c.activation_fn)
        out = tf.reshape(tf.matmul(inner, self._w(d2.kernel)), [b, length, h])
        y = bias_dropout_residual(out, self._w(d2.bias), x1, p_hid, seed + 3)
        if not c.pre_layer_norm:
            y = norm(y, ln2)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def keras_config(self):
        base = keras.layers.Layer.get_config(self)
        base.update(config=dataclasses.asdict(self.config), epsilon=self.epsilon)
        return base
