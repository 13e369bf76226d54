"""Our layers behind NeurST's constructor and call signatures.

NeurSTEncoderLayer / NeurSTDecoderLayer replace NeurST's
TransformerEncoderLayer / TransformerDecoderLayer inside its Transformer
encoder and decoder stacks; LayerNormalization replaces their output norms.
Variable names and shapes are NeurST's (see lightseq_tf.layers.encoder and
.decoder), which is what NeurST's name-based checkpoints key on, so
checkpoints move both ways between accelerated and native runs.
"""
import tensorflow as tf

from lightseq_tf import config as cfg
from lightseq_tf.layers.decoder import LSTransformerDecoderLayer
from lightseq_tf.layers.encoder import LSTransformerEncoderLayer
from lightseq_tf.ops.layer_norm import layer_norm

# NeurST's activation names (neurst.utils.activations.get_activation) -> ours.
ACTIVATIONS = {"relu": "relu", "gelu": "gelu_tanh", "gelu_approx": "gelu_tanh",
               "gelu_nonapprox": "gelu"}
# NeurST sizes nothing up front; our limits only guard int32 indexing here.
_NO_LIMIT = 2**31 - 1


class Unsupported(ValueError):
    """A NeurST layer configuration we do not accelerate (it stays native)."""


def _config(native):
    """Our TransformerConfig from a (not yet built) NeurST layer's settings."""
    if native._attention_type != "dot_product":
        raise Unsupported("attention_type=%r" % native._attention_type)
    if native._ffn_activation not in ACTIVATIONS:
        raise Unsupported("ffn_activation=%r" % (native._ffn_activation,))
    if native._hidden_size % native._num_attention_heads:
        raise Unsupported("hidden_size %% num_attention_heads != 0")
    return cfg.transformer_config(
        max_batch_tokens=_NO_LIMIT, max_seq_len=_NO_LIMIT, hidden_size=native._hidden_size,
        intermediate_size=native._filter_size, nhead=native._num_attention_heads,
        attn_prob_dropout_ratio=float(native._attention_dropout_rate),
        activation_dropout_ratio=float(native._ffn_dropout_rate),
        hidden_dropout_ratio=float(native._layer_postprocess_dropout_rate),
        pre_layer_norm=not native._post_normalize,
        activation_fn=ACTIVATIONS[native._ffn_activation])


def lengths_from_bias(bias, what):
    """Key lengths from NeurST's additive attention bias (0 where a key is
    seen, FLOAT_MIN where not), with a check that every row sees a prefix of
    the keys, which is what our attention masks (NeurST pads right):
    - [batch, keys], a padding bias: lengths [batch];
    - [batch or 1, queries, keys] or [batch or 1, 1, queries, keys], a bias
      per query (wait-k's lagged memory; a monotonic encoder's causal and
      padding mask): lengths [batch or 1, queries], one per query;
    - None: None (every key seen)."""
    if bias is None:
        return None
    rank = bias.shape.rank
    if rank == 4:
        if bias.shape[1] != 1:
            raise ValueError("lightseq_tf's NeurST layers take one attention bias for all heads "
                             "([batch, 1, queries, keys]) for %s, got shape %s" % (what, bias.shape))
        bias = bias[:, 0]
    elif rank not in (2, 3):
        raise ValueError("lightseq_tf's NeurST layers take an attention bias of rank 2, 3 or 4 "
                         "for %s, got rank %s" % (what, rank))
    keep = bias > -1.0  # FLOAT_MIN is -1e9 (float32) or -6e4 (float16)
    lengths = tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1)
    check = tf.debugging.assert_equal(
        keep, tf.sequence_mask(lengths, tf.shape(bias)[-1]),
        message="lightseq_tf: %s attention bias must mask a suffix of the keys in each row "
        "(padding at the right end)" % what)
    with tf.control_dependencies([check]):
        return tf.identity(lengths)


class NeurSTEncoderLayer(LSTransformerEncoderLayer):
    """NeurST's TransformerEncoderLayer: call(x, x_bias, cache=None, is_training=True)."""

    @classmethod
    def from_native(cls, native):
        return cls(_config(native), epsilon=native._layer_postprocess_epsilon, name=native.name)

    def __call__(self, x, x_bias, cache=None, **kwargs):
        # NeurST's streaming encoder passes the cache positionally.
        return super().__call__(x, x_bias, cache=cache, **kwargs)

    def call(self, x, x_bias, cache=None, is_training=True):
        return LSTransformerEncoderLayer.call(
            self, x, lengths=lengths_from_bias(x_bias, "the source"),
            cache=cache, training=is_training)


class NeurSTDecoderLayer(LSTransformerDecoderLayer):
    """NeurST's TransformerDecoderLayer: call(x, x_bias, cache, memory=None,
    memory_bias=None, is_training=True, decode_loop_step=None); x_bias is
    NeurST's causal bias, which our causal attention implies."""

    @classmethod
    def from_native(cls, native):
        return cls(_config(native), epsilon=native._layer_postprocess_epsilon,
                   cross_attention=native._with_cross_attention, name=native.name)

    def __call__(self, x, x_bias, cache=None, **kwargs):
        # NeurST passes the cache positionally; the base class keeps the
        # caller's dict (updated in place) from the keyword.
        return super().__call__(x, x_bias, cache=cache, **kwargs)

    def call(self, x, x_bias, cache=None, memory=None, memory_bias=None, is_training=True,
             decode_loop_step=None):
        if not self.cross_attention:  # NeurST's layer ignores the memory too
            memory = memory_bias = None
        return LSTransformerDecoderLayer.call(
            self, x, memory=memory, memory_lengths=lengths_from_bias(memory_bias, "the memory"),
            cache=cache,
            decode_loop_step=decode_loop_step, training=is_training)


class LayerNormalization(tf.keras.layers.LayerNormalization):
    """tf.keras' LayerNormalization (same variables and config) over our fused
    op for the last-axis, scaled and centred case; otherwise Keras' own."""

    def call(self, inputs):
        if self.axis != [inputs.shape.rank - 1] or not (self.center and self.scale):
            return super().call(inputs)
        dtype = self.compute_dtype
        return layer_norm(tf.cast(inputs, dtype), tf.cast(self.gamma, dtype),
                          tf.cast(self.beta, dtype), self.epsilon)
