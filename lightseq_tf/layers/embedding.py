"""LSTransformerEmbeddingLayer: token embedding * sqrt(dim) + sinusoid
positions + dropout, one fused op forward and one backward."""
import dataclasses
import math

import tensorflow as tf

from lightseq_tf import config as cfg
from lightseq_tf.layers import _keras
from lightseq_tf.ops.embedding import embedding


@_keras.serializable
class LSTransformerEmbeddingLayer(_keras.keras.layers.Layer):
    """ids [batch, length] (or [batch] with `step`: one decoding position)
    -> [..., embedding_dim] in the layer's compute dtype.

    config: an EmbeddingConfig (lightseq_tf.config.embedding_config) or its
    dict. padding_idx >= 0 gives padding tokens zero embeddings and no
    gradient (LightSeq) and a Keras mask; -1 embeds them like any token
    (NeurST). Positions beyond max_seq_len and more than max_batch_tokens
    ids raise InvalidArgumentError.
    """

    get_config = _keras.ConfigMethod(cfg.embedding_config)

    def __init__(self, config, dtype=None, **kwargs):
        self.config = config if isinstance(config, cfg.EmbeddingConfig) \
            else cfg.embedding_config(**config)
        super().__init__(dtype=_keras.resolve_dtype(dtype, self.config.fp16), **kwargs)
        self.supports_masking = self.config.padding_idx >= 0

    def build(self, input_shape=None):
        c = self.config
        with _keras.variable_scope("emb"):
            self.embeddings = _keras.add_float32_weight(
                self, "weights", [c.vocab_size, c.embedding_dim],
                _keras.keras.initializers.RandomNormal(stddev=c.embedding_dim ** -0.5))
        self.built = True

    def call(self, inputs, step=None, training=None):
        c = self.config
        ids = tf.convert_to_tensor(inputs)
        if not ids.dtype.is_integer:
            raise ValueError("inputs must be integer token ids, got %s" % ids.dtype.name)
        with tf.control_dependencies([_keras.check_tokens(tf.size(ids), c.max_batch_tokens)]):
            seed = _keras.draw_seed()
        offset = 0 if step is None else step

        def run(train):
            return embedding(ids, self.embeddings, scale=math.sqrt(c.embedding_dim),
                             pos_offset=offset, max_positions=c.max_seq_len,
                             padding_id=c.padding_idx, rate=c.dropout if train else 0.0,
                             seed=seed, dtype=self.compute_dtype)

        return _keras.by_training(training, run)

    def compute_mask(self, inputs, mask=None):
        if self.config.padding_idx < 0:
            return None
        return _keras.not_equal(inputs, self.config.padding_idx)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.config.embedding_dim,)

    def keras_config(self):
        base = _keras.keras.layers.Layer.get_config(self)
        base["config"] = dataclasses.asdict(self.config)
        return base
