"""LSTransformer: a complete encoder-decoder translation model of the fused
layers (LightSeq's LSTransformer), with beam-search generation and a
SavedModel export of the generator.

    config = LSTransformer.get_config("transformer-base", max_batch_tokens=4096,
                                      max_seq_len=256, vocab_size=32000, padding_idx=0,
                                      num_encoder_layer=6, num_decoder_layer=6)
    model = LSTransformer(config)
    logits = model((src_ids, prev_output_ids), training=True)
    loss = model.loss_function(target_ids, logits)     # label-smoothed CE per token
    ids, scores = model.generate(src_ids, beam_size=4)

Ids are right-padded with padding_idx. Target input starts with bos_idx
(default: eos_idx, fairseq's convention); targets end with eos_idx. Pre-LN
models close each stack with a LayerNorm (as NeurST and fairseq do). The
output projection is the target embedding table (tie_output) or its own
[hidden, vocab] kernel; source and target share one table when
share_embeddings.
"""
import dataclasses

import tensorflow as tf

from lightseq_tf import config as cfg
from lightseq_tf.layers import _keras
from lightseq_tf.layers import _transformer as tr
from lightseq_tf.layers.beam_search import beam_search
from lightseq_tf.layers.cross_entropy import LSCrossEntropyLayer
from lightseq_tf.layers.decoder import LSTransformerDecoderLayer
from lightseq_tf.layers.embedding import LSTransformerEmbeddingLayer
from lightseq_tf.layers.encoder import LSTransformerEncoderLayer
from lightseq_tf.ops.layer_norm import layer_norm

keras = _keras.keras


@_keras.serializable
class LSTransformer(keras.Model):
    """(source ids [batch, src_len], target input ids [batch, tgt_len]) ->
    logits [batch, tgt_len, vocab_size] in the compute dtype."""

    get_config = _keras.ConfigMethod(cfg.transformer_model_config)

    def __init__(self, config, epsilon=1e-6, dtype=None, **kwargs):
        self.config = config if isinstance(config, cfg.TransformerModelConfig) \
            else cfg.transformer_model_config(**config)
        self.epsilon = float(epsilon)
        super().__init__(dtype=_keras.resolve_dtype(dtype, self.config.fp16), **kwargs)
        c, policy = self.config, self.dtype_policy
        self.src_embedding = LSTransformerEmbeddingLayer(c.embedding(source=True), dtype=policy,
                                                         name="src_embedding")
        self.tgt_embedding = self.src_embedding if c.share_embeddings else \
            LSTransformerEmbeddingLayer(c.embedding(source=False), dtype=policy,
                                        name="tgt_embedding")
        layer = c.layer()
        self.encoder_layers = [LSTransformerEncoderLayer(layer, self.epsilon, dtype=policy,
                                                         name="encoder_layer_%d" % i)
                               for i in range(c.num_encoder_layer)]
        self.decoder_layers = [LSTransformerDecoderLayer(layer, self.epsilon, dtype=policy,
                                                         name="decoder_layer_%d" % i)
                               for i in range(c.num_decoder_layer)]
        h = c.hidden_size
        # Pre-LN stacks end with a LayerNorm; post-LN layers already end normalized.
        self.encoder_output_ln = tr.ln_weights("encoder_output_ln", h) if c.pre_layer_norm \
            else None
        self.decoder_output_ln = tr.ln_weights("decoder_output_ln", h) if c.pre_layer_norm \
            else None
        self.output_projection = None if c.tie_output else tr.Weights(
            "output_projection", [("kernel", [h, c.vocab_size], "glorot_uniform")])
        self.criterion = LSCrossEntropyLayer(c.cross_entropy(), reduction="mean", dtype=policy,
                                             name="criterion")

    def build(self, input_shape=None):
        """Creates every variable from the config alone (no input shape is
        needed), so that generate / encode / export_generator / load_weights
        work on a model that was never called. Each part builds under the
        name scope its call would give it: the variables are named as in a
        model built by a forward call, however build is reached."""
        h = self.config.hidden_size
        with _keras.call_scope(self):
            for layer in (self.src_embedding, self.tgt_embedding):  # one when shared
                if not layer.built:
                    with _keras.call_scope(layer):
                        layer.build([None, None])
            for layer in self.encoder_layers + self.decoder_layers:
                if not layer.built:
                    with _keras.call_scope(layer):
                        layer.build([None, None, h])
            for part in (self.encoder_output_ln, self.decoder_output_ln,
                         self.output_projection):
                if part is not None:  # Weights: scoped by their own build
                    part.build([None, None, h])
        self.built = True

    def _built(self):
        """The model, built on first use outside a call (generate, encode,
        ...); eagerly, also when that first use is inside a tf.function."""
        if not self.built:
            with tf.init_scope():
                self.build()
        return self

    # --- the pieces -------------------------------------------------------

    def _lengths(self, ids):
        return tf.reduce_sum(tf.cast(tf.not_equal(ids, self.config.padding_idx), tf.int32), -1)

    def _close(self, x, ln):
        if ln is None:
            return x
        return layer_norm(x, tf.cast(ln.gamma, x.dtype), tf.cast(ln.beta, x.dtype), self.epsilon)

    def encode(self, src_ids, training=None):
        """-> (memory [batch, src_len, hidden], source lengths [batch])."""
        self._built()
        src_ids = self._checked_ids(src_ids, "source ids")
        lengths = self._lengths(src_ids)
        x = self.src_embedding(src_ids, training=training)
        for layer in self.encoder_layers:
            x = layer(x, lengths=lengths, training=training)
        return self._close(x, self.encoder_output_ln), lengths

    def project(self, x):
        """Hidden states [..., hidden] -> logits [..., vocab_size]."""
        self._built()
        kernel = self.output_projection.kernel if self.output_projection is not None \
            else self.tgt_embedding.embeddings
        flat = tf.reshape(x, [-1, self.config.hidden_size])
        logits = tf.matmul(flat, tf.cast(kernel, x.dtype),
                           transpose_b=self.output_projection is None)
        return tf.reshape(logits, tf.concat([tf.shape(x)[:-1], [self.config.vocab_size]], 0))

    def decode(self, tgt_ids, memory, memory_lengths, training=None):
        """Target input ids [batch, tgt_len] over encode's memory -> logits."""
        self._built()
        tgt_ids = self._checked_ids(tgt_ids, "target ids")
        x = self.tgt_embedding(tgt_ids, training=training)
        for layer in self.decoder_layers:
            x = layer(x, memory=memory, memory_lengths=memory_lengths, training=training)
        return self.project(self._close(x, self.decoder_output_ln))

    def call(self, inputs, training=None):
        src_ids, tgt_ids = inputs
        memory, lengths = self.encode(src_ids, training=training)
        return self.decode(tgt_ids, memory, lengths, training=training)

    def loss_function(self, targets, logits):
        """Label-smoothed cross-entropy per non-padding target token (the
        `loss=` of model.compile)."""
        return self.criterion(logits, tf.cast(targets, tf.int32))[0]

    def _checked_ids(self, ids, what):
        ids = tf.convert_to_tensor(ids)
        if not ids.dtype.is_integer or ids.shape.rank != 2:
            raise ValueError("%s must be integer [batch, length], got %s %s"
                             % (what, ids.dtype.name, ids.shape))
        return ids

    # --- generation -------------------------------------------------------

    def generate(self, src_ids, beam_size=4, max_len=None, length_penalty=0.6):
        """Beam search (beam_size 1: greedy) with the incremental decoder
        (keys/values cached per layer, memory projected once per sentence).

        max_len: most target tokens per sentence (EOS included); default
        source length + 50, at most max_seq_len. Returns (ids [batch, length]
        int32, padded with padding_idx after EOS; scores [batch] float32,
        log-probability over GNMT's length penalty ((5 + n) / 6) **
        length_penalty).
        """
        c = self._built().config
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
            raise ValueError("beam_size must be an int >= 1, got %r" % (beam_size,))
        if length_penalty < 0:
            raise ValueError("length_penalty must be >= 0, got %r" % (length_penalty,))
        src_ids = self._checked_ids(src_ids, "source ids")
        if max_len is None:
            max_len = tf.minimum(tf.shape(src_ids)[1] + 50, c.max_seq_len)
        limit = tf.debugging.assert_less_equal(
            tf.cast(max_len, tf.int32), c.max_seq_len,
            message="max_len exceeds max_seq_len = %d" % c.max_seq_len)
        with tf.control_dependencies([limit]):
            memory, lengths = self.encode(src_ids, training=False)
        batch = tf.shape(src_ids)[0]
        k = beam_size
        tiled_lengths = tf.repeat(lengths, k, axis=0)
        memories = [tf.nest.map_structure(lambda t: tf.repeat(t, k, axis=0),
                                          layer.memorize_memory(memory)["memory"])
                    for layer in self.decoder_layers]
        h, heads = c.hidden_size, c.nhead
        empty = tf.zeros([batch * k, 0, heads, h // heads], self.compute_dtype)
        state = [{"keys": empty, "values": empty} for _ in self.decoder_layers]

        def step(ids, t, state):
            x = self.tgt_embedding(ids, step=t, training=False)[:, None, :]
            new_state = []
            for layer, past, mem in zip(self.decoder_layers, state, memories):
                cache = {"self_attention": past, "memory": mem}
                x = layer(x, memory_lengths=tiled_lengths, cache=cache, training=False)
                new_state.append(cache["self_attention"])
            logits = self.project(self._close(x[:, 0], self.decoder_output_ln))
            return tf.nn.log_softmax(tf.cast(logits, tf.float32)), new_state

        return beam_search(step, state, batch, k, max_len, float(length_penalty), c.start_idx,
                           c.eos_idx, c.padding_idx)

    def export_generator(self, path, beam_size=4, max_len=None, length_penalty=0.6):
        """A SavedModel whose `generate` (and serving signature) maps source
        ids [batch, length] int32 to {"ids", "scores"}; it loads with
        tf.saved_model.load and runs without lightseq_tf's Python classes
        (the op library must be loaded: import lightseq_tf, or
        tf.load_op_library on its .so)."""
        model = self._built()

        class Generator(tf.Module):
            def __init__(self):
                super().__init__()
                # The variables, not the Keras model: a tracked Keras 3 model
                # would add its own float-input serving signature.
                self.model_variables = list(model.variables)

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="src_ids")])
            def generate(self, src_ids):
                ids, scores = model.generate(src_ids, beam_size, max_len, length_penalty)
                return {"ids": ids, "scores": scores}

        gen = Generator()
        tf.saved_model.save(gen, path, signatures={"serving_default": gen.generate})
        return path

    def load_weights(self, *args, **kwargs):
        """Keras' load_weights, also into a model that was never called (its
        variables are made from the config first)."""
        self._built()
        return super().load_weights(*args, **kwargs)

    def keras_config(self):
        base = keras.layers.Layer.get_config(self)
        base.update(config=dataclasses.asdict(self.config), epsilon=self.epsilon)
        return base
