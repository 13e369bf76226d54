"""An LSTransformer (in memory, or saved by Keras) as a `model.Transformer`.

Our layers carry NeurST's variable names, so the layers map as NeurST's do;
the rest comes from the model's config: source and target tables (one when
share_embeddings), the output projection (the target table when
tie_output, else its own [hidden, vocab] kernel; no bias), the output
LayerNorms of pre-LN stacks, sqrt(hidden) embedding scale, NeurST's sinusoid
positions (computed by our own embedding op, so the table is bit for bit
what the model adds), LayerNorm epsilon, eos_idx / bos_idx.

The model holds ids only: the vocabulary (one token per id, as a list or a
file of one token per line) comes from the caller.
"""
import math
import os
import zipfile

import numpy as np

from lightseq_tf.export.ctranslate2.model import Stack, Transformer, UnsupportedModelError


def read_vocabulary(vocabulary, what):
    """A list of tokens, or the path of a file of one token per line."""
    if isinstance(vocabulary, (str, os.PathLike)):
        path = os.fspath(vocabulary)
        if not os.path.isfile(path):
            raise FileNotFoundError("%s vocabulary file not found: %s" % (what, path))
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    if vocabulary is None:
        raise ValueError("a %s vocabulary is needed (the model holds ids only): a list of tokens "
                         "or a file of one token per line" % what)
    return list(vocabulary)


def load_lstransformer(path):
    """An LSTransformer saved by Keras: a `.keras` file (model.save, Keras 3
    or tf_keras), or a tf_keras SavedModel directory (model.save(dir) under
    TF_USE_LEGACY_KERAS=1)."""
    from lightseq_tf.layers import _keras
    from lightseq_tf.layers.transformer_model import LSTransformer

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError("no saved model at %s" % path)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError("%s is a directory without saved_model.pb (not a "
                                    "SavedModel)" % path)
        if _keras.KERAS3 or not os.path.isfile(os.path.join(path, "keras_metadata.pb")):
            raise UnsupportedModelError(
                "%s is a SavedModel without a Keras model this Keras can load (Keras 3 saves and "
                "loads .keras files; a generator from export_generator holds no config): save "
                "the model with model.save('model.keras')" % path)
    elif not zipfile.is_zipfile(path):
        raise UnsupportedModelError("%s is not a Keras .keras archive" % path)
    model = _keras.keras.models.load_model(path, compile=False)
    if not isinstance(model, LSTransformer):
        raise UnsupportedModelError("%s holds a %s, not an LSTransformer"
                                    % (path, type(model).__name__))
    return model


def _position_table(length, hidden):
    """NeurST's sinusoid for positions 0..length-1, from our embedding op (a
    zero table, scale 1): exactly what LSTransformerEmbeddingLayer adds."""
    import tensorflow as tf

    from lightseq_tf.ops.embedding import embedding
    return embedding(tf.zeros([1, length], tf.int32), tf.zeros([1, hidden]), scale=1.0,
                     positions=True, max_positions=length).numpy()[0]


def describe(model, vocabulary, source_vocabulary=None, unk_token=None, add_source_eos=False):
    """`model.Transformer` of a built LSTransformer.

    vocabulary: the target's (and, without source_vocabulary, the source's)
    tokens by id. unk_token: CTranslate2 needs an unknown token in each
    vocabulary (tokens it does not know map to it); default "<unk>" if both
    vocabularies have it, else the padding token. add_source_eos: whether
    CTranslate2 appends eos to every source (if the model was trained so).
    """
    from lightseq_tf.layers.transformer_model import LSTransformer

    if not isinstance(model, LSTransformer):
        raise TypeError("expected an LSTransformer, got %s" % type(model).__name__)
    if not model.built:
        model.build()  # its variables, from the config alone
    c = model.config
    origin = "LSTransformer %r" % model.name
    target = read_vocabulary(vocabulary, "target")
    source = read_vocabulary(source_vocabulary, "source") if source_vocabulary is not None \
        else target
    if unk_token is None:
        unk_token = "<unk>" if "<unk>" in source and "<unk>" in target else \
            target[c.padding_idx] if c.padding_idx < len(target) else None

    scale = float(np.float32(math.sqrt(c.hidden_size)))  # the embedding layer's scale attr
    positions = _position_table(c.max_seq_len, c.hidden_size)

    def stack(layers, ln):
        return Stack(layers=[{n: v.numpy() for n, v in layer.named_weights().items()}
                             for layer in layers],
                     num_heads=c.nhead, pre_norm=c.pre_layer_norm, activation=c.activation_fn,
                     output_ln=None if ln is None else {"gamma": ln.gamma.numpy(),
                                                        "beta": ln.beta.numpy()},
                     embedding_scale=scale, position_encodings=positions)

    tgt_table = model.tgt_embedding.embeddings.numpy()
    output = tgt_table if model.output_projection is None else \
        model.output_projection.kernel.numpy().T
    for name, tokens in (("target", target), ("source", source)):
        if len(tokens) <= max(c.eos_idx, c.start_idx):
            raise UnsupportedModelError("%s: the %s vocabulary has %d tokens, fewer than the "
                                        "model's ids (vocab_size %d)"
                                        % (origin, name, len(tokens), c.vocab_size))
    return Transformer(
        encoder=stack(model.encoder_layers, model.encoder_output_ln),
        decoder=stack(model.decoder_layers, model.decoder_output_ln),
        source_embedding=model.src_embedding.embeddings.numpy(), target_embedding=tgt_table,
        output_weight=output, output_bias=None,
        epsilon=model.epsilon, source_vocabulary=source, target_vocabulary=target,
        unk_token=unk_token, start_token=target[c.start_idx], eos_token=target[c.eos_idx],
        add_source_eos=add_source_eos, origin=origin)
