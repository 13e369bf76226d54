"""A Transformer as NeurST lays it out (the layout our layers share), and
its CTranslate2 TransformerSpec.

Both converters (NeurST checkpoints, LSTransformer) fill a `Transformer`;
`to_spec` maps it onto CTranslate2's public spec API. Every layer's weights
come in under NeurST's variable paths relative to the layer
("self_attention_prepost_wrapper/self_attention/qkv_transform/kernel", ...),
kernels [in, out] as TensorFlow stores them; `to_spec` consumes each one
exactly once and refuses a layer with a weight it did not expect or without
one it needs, so nothing is dropped or invented silently.
"""
import dataclasses
from typing import List, Optional

import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

ACTIVATIONS = {  # CTranslate2's name for each FFN activation we map
    "relu": common_spec.Activation.RELU,
    "gelu": common_spec.Activation.GELU,            # exact (erf)
    "gelu_tanh": common_spec.Activation.GELUTanh,   # tanh approximation (NeurST's "gelu")
    "tanh": common_spec.Activation.Tanh,
}


class UnsupportedModelError(ValueError):
    """The model uses something CTranslate2's Transformer (or this converter)
    cannot express; the message names it."""


@dataclasses.dataclass
class Stack:
    """An encoder or decoder: its layers' weights by NeurST-relative path,
    the LayerNorm that closes a pre-LN stack (None for post-LN), and its
    input: the token embedding times embedding_scale (sqrt(hidden) with
    NeurST's sinusoids) plus position_encodings [positions, hidden], written
    into the model explicitly (CTranslate2's built-in sinusoid table starts
    at position 1, NeurST's and ours at 0)."""
    layers: List[dict]
    num_heads: int
    pre_norm: bool
    activation: str
    output_ln: Optional[dict]
    embedding_scale: float
    position_encodings: np.ndarray


@dataclasses.dataclass
class Transformer:
    """Everything a CTranslate2 Transformer needs, framework-free (numpy).
    output_weight is [target vocab, hidden] (CTranslate2's layout)."""
    encoder: Stack
    decoder: Stack
    source_embedding: np.ndarray
    target_embedding: np.ndarray
    output_weight: np.ndarray
    output_bias: Optional[np.ndarray]
    epsilon: float
    source_vocabulary: List[str]
    target_vocabulary: List[str]
    unk_token: str
    start_token: str
    eos_token: str
    add_source_eos: bool
    origin: str = "the model"  # named in errors


def _pop(weights, name, where):
    try:
        return np.asarray(weights.pop(name), np.float32)
    except KeyError:
        raise UnsupportedModelError("%s: %s has no weight %r (an architecture this converter "
                                    "does not know)" % (where.origin, where.scope, name)) from None


class _Where:
    def __init__(self, origin, scope):
        self.origin, self.scope = origin, scope


def _linear(spec, weights, prefix, where):
    spec.weight = np.ascontiguousarray(_pop(weights, prefix + "/kernel", where).T)
    spec.bias = _pop(weights, prefix + "/bias", where)


def _layer_norm(spec, weights, prefix, where):
    spec.gamma = _pop(weights, prefix + "/gamma", where)
    spec.beta = _pop(weights, prefix + "/beta", where)


def _ffn(spec, weights, where):
    _layer_norm(spec.layer_norm, weights, "ffn_prepost_wrapper/ln", where)
    _linear(spec.linear_0, weights, "ffn_prepost_wrapper/ffn/dense1", where)
    _linear(spec.linear_1, weights, "ffn_prepost_wrapper/ffn/dense2", where)


def _self_attention(spec, weights, where):
    scope = "self_attention_prepost_wrapper"
    _layer_norm(spec.layer_norm, weights, scope + "/ln", where)
    _linear(spec.linear[0], weights, scope + "/self_attention/qkv_transform", where)  # q, k, v
    _linear(spec.linear[1], weights, scope + "/self_attention/output_transform", where)


def _encdec_attention(spec, weights, where):
    scope = "encdec_attention_prepost_wrapper"
    _layer_norm(spec.layer_norm, weights, scope + "/ln", where)
    _linear(spec.linear[0], weights, scope + "/encdec_attention/q_transform", where)
    _linear(spec.linear[1], weights, scope + "/encdec_attention/kv_transform", where)  # k, v
    _linear(spec.linear[2], weights, scope + "/encdec_attention/output_transform", where)


def _no_leftovers(weights, where):
    if weights:
        raise UnsupportedModelError("%s: %s has weights this converter does not map: %s"
                                    % (where.origin, where.scope, ", ".join(sorted(weights))))


def _stack_spec(stack, decoder, origin):
    if stack.activation not in ACTIVATIONS:
        raise UnsupportedModelError("%s: FFN activation %r is not supported (supported: %s)"
                                    % (origin, stack.activation, ", ".join(ACTIVATIONS)))
    cls = transformer_spec.TransformerDecoderSpec if decoder else \
        transformer_spec.TransformerEncoderSpec
    spec = cls(len(stack.layers), stack.num_heads, pre_norm=stack.pre_norm,
               activation=ACTIVATIONS[stack.activation],
               no_final_norm=stack.output_ln is None)
    name = "decoder" if decoder else "encoder"
    for i, (layer_spec, layer) in enumerate(zip(spec.layer, stack.layers)):
        weights, where = dict(layer), _Where(origin, "%s layer %d" % (name, i))
        _self_attention(layer_spec.self_attention, weights, where)
        if decoder:
            _encdec_attention(layer_spec.attention, weights, where)
        _ffn(layer_spec.ffn, weights, where)
        _no_leftovers(weights, where)
    if stack.output_ln is not None:
        weights, where = dict(stack.output_ln), _Where(origin, name + " output LayerNorm")
        spec.layer_norm.gamma = _pop(weights, "gamma", where)
        spec.layer_norm.beta = _pop(weights, "beta", where)
        _no_leftovers(weights, where)
    return spec


def _check_vocabulary(tokens, rows, what, origin):
    if len(tokens) != rows:
        raise UnsupportedModelError("%s: the %s vocabulary has %d tokens but the embedding has "
                                    "%d rows" % (origin, what, len(tokens), rows))
    seen = set()
    for i, t in enumerate(tokens):
        if not isinstance(t, str) or not t:
            raise UnsupportedModelError("%s: %s vocabulary token %d is %r (tokens must be "
                                        "non-empty strings)" % (origin, what, i, t))
        if t in seen:
            raise UnsupportedModelError("%s: %s vocabulary token %r appears twice (CTranslate2 "
                                        "maps a token to one id)" % (origin, what, t))
        seen.add(t)
    return seen


def to_spec(m: Transformer):
    """The CTranslate2 TransformerSpec of `m` (validated by CTranslate2 on save)."""
    origin = m.origin
    h = m.source_embedding.shape[1]
    for what, arr in (("target embedding", m.target_embedding), ("output projection",
                                                                  m.output_weight)):
        if arr.shape[1] != h:
            raise UnsupportedModelError("%s: %s width %d differs from the source embedding's %d"
                                        % (origin, what, arr.shape[1], h))
    if m.output_weight.shape[0] != m.target_embedding.shape[0]:
        raise UnsupportedModelError("%s: the output projection has %d rows, the target "
                                    "vocabulary %d" % (origin, m.output_weight.shape[0],
                                                       m.target_embedding.shape[0]))
    for name, stack in (("encoder", m.encoder), ("decoder", m.decoder)):
        if stack.position_encodings.ndim != 2 or stack.position_encodings.shape[1] != h:
            raise UnsupportedModelError("%s: %s position table shape %s, want [positions, %d]"
                                        % (origin, name, stack.position_encodings.shape, h))
    source = _check_vocabulary(m.source_vocabulary, m.source_embedding.shape[0], "source", origin)
    target = _check_vocabulary(m.target_vocabulary, m.target_embedding.shape[0], "target", origin)
    # CTranslate2 appends the unknown token to a vocabulary that lacks it
    # (which would shift the output layer), and looks the others up by name.
    for token, name, vocab, side in ((m.unk_token, "unknown", source, "source"),
                                     (m.unk_token, "unknown", target, "target"),
                                     (m.start_token, "decoder start", target, "target"),
                                     (m.eos_token, "end-of-sentence", target, "target")) + \
            (((m.eos_token, "end-of-sentence", source, "source"),) if m.add_source_eos else ()):
        if token not in vocab:
            raise UnsupportedModelError("%s: the %s token %r is not in the %s vocabulary"
                                        % (origin, name, token, side))

    encoder = _stack_spec(m.encoder, False, origin)
    decoder = _stack_spec(m.decoder, True, origin)
    encoder.embeddings[0].weight = np.asarray(m.source_embedding, np.float32)
    decoder.embeddings.weight = np.asarray(m.target_embedding, np.float32)
    for spec, stack in ((encoder, m.encoder), (decoder, m.decoder)):
        spec.scale_embeddings = np.float32(stack.embedding_scale)  # 1: none (CTranslate2)
        spec.position_encodings.encodings = np.ascontiguousarray(stack.position_encodings,
                                                                 np.float32)
    decoder.projection.weight = np.ascontiguousarray(m.output_weight, np.float32)
    if m.output_bias is not None:
        decoder.projection.bias = np.asarray(m.output_bias, np.float32)

    spec = transformer_spec.TransformerSpec(encoder, decoder)
    spec.config.layer_norm_epsilon = float(m.epsilon)  # CTranslate2's default is 1e-5
    spec.config.unk_token = m.unk_token
    spec.config.bos_token = m.start_token
    spec.config.eos_token = m.eos_token
    spec.config.decoder_start_token = m.start_token
    spec.config.add_source_bos = False
    spec.config.add_source_eos = bool(m.add_source_eos)
    spec.register_source_vocabulary(list(m.source_vocabulary))
    spec.register_target_vocabulary(list(m.target_vocabulary))
    return spec
