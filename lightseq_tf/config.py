"""Layer configurations: LightSeq's get_config presets and their checks.

    cfg = transformer_config("transformer-big", max_batch_tokens=8192, max_seq_len=256)
    cfg = embedding_config(vocab_size=32000, embedding_dim=512, max_batch_tokens=4096,
                           max_seq_len=256, padding_idx=0)

A config is a frozen dataclass (hashable, `dataclasses.asdict` for Keras'
get_config). Every field is checked on construction; a bad value raises
ValueError naming the field and what it must be.
"""
import dataclasses
from typing import Optional

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")

# LightSeq's presets (lightseq/training/ops/pytorch/transformer_encoder_layer.py).
PRESETS = {
    "transformer-base": dict(hidden_size=512, intermediate_size=2048, nhead=8,
                             pre_layer_norm=True, activation_fn="relu"),
    "transformer-big": dict(hidden_size=1024, intermediate_size=4096, nhead=16,
                            pre_layer_norm=True, activation_fn="relu"),
    "bert-base": dict(hidden_size=768, intermediate_size=3072, nhead=12,
                      pre_layer_norm=False, activation_fn="gelu"),
    "bert-big": dict(hidden_size=1024, intermediate_size=4096, nhead=16,
                     pre_layer_norm=False, activation_fn="gelu"),
}
_DROPOUT = dict(attn_prob_dropout_ratio=0.1, activation_dropout_ratio=0.1,
                hidden_dropout_ratio=0.1)


def _positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError("%s must be a positive int, got %r" % (name, v))


def _ratio(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
        raise ValueError("%s must be a float in [0, 1), got %r" % (name, v))


def _bool(name, v):
    if not isinstance(v, bool):
        raise ValueError("%s must be a bool, got %r" % (name, v))


def _local_rank(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < -1:
        raise ValueError("local_rank must be an int >= -1 (-1: not distributed), got %r" % (v,))


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Encoder / decoder layer configuration (LightSeq's field names)."""
    max_batch_tokens: int
    max_seq_len: int
    hidden_size: int
    intermediate_size: int
    nhead: int
    attn_prob_dropout_ratio: float
    activation_dropout_ratio: float
    hidden_dropout_ratio: float
    pre_layer_norm: bool
    activation_fn: str
    fp16: bool = False
    local_rank: int = -1

    def __post_init__(self):
        for f in ("max_batch_tokens", "max_seq_len", "hidden_size", "intermediate_size", "nhead"):
            _positive_int(f, getattr(self, f))
        for f in ("attn_prob_dropout_ratio", "activation_dropout_ratio", "hidden_dropout_ratio"):
            _ratio(f, getattr(self, f))
        _bool("pre_layer_norm", self.pre_layer_norm)
        _bool("fp16", self.fp16)
        _local_rank(self.local_rank)
        if self.activation_fn not in ACTIVATIONS:
            raise ValueError("activation_fn must be one of %s, got %r"
                             % (", ".join(ACTIVATIONS), self.activation_fn))
        if self.hidden_size % self.nhead:
            raise ValueError("hidden_size (%d) must be divisible by nhead (%d)"
                             % (self.hidden_size, self.nhead))
        if self.max_seq_len > self.max_batch_tokens:
            raise ValueError("max_seq_len (%d) must be <= max_batch_tokens (%d)"
                             % (self.max_seq_len, self.max_batch_tokens))


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig:
    """Token embedding (LightSeq's LSTransformerEmbeddingLayer fields)."""
    vocab_size: int
    embedding_dim: int
    max_batch_tokens: int
    max_seq_len: int
    padding_idx: int
    dropout: float = 0.1
    fp16: bool = False
    local_rank: int = -1

    def __post_init__(self):
        for f in ("vocab_size", "embedding_dim", "max_batch_tokens", "max_seq_len"):
            _positive_int(f, getattr(self, f))
        if isinstance(self.padding_idx, bool) or not isinstance(self.padding_idx, int) or \
                not -1 <= self.padding_idx < self.vocab_size:
            raise ValueError("padding_idx must be an int in [-1, vocab_size = %d) (-1: none), "
                             "got %r" % (self.vocab_size, self.padding_idx))
        _ratio("dropout", self.dropout)
        _bool("fp16", self.fp16)
        _local_rank(self.local_rank)


@dataclasses.dataclass(frozen=True)
class CrossEntropyConfig:
    """Label-smoothed cross-entropy (LightSeq's LSCrossEntropyLayer fields)."""
    max_batch_tokens: int
    padding_idx: int
    epsilon: float = 0.1
    fp16: bool = False
    local_rank: int = -1

    def __post_init__(self):
        _positive_int("max_batch_tokens", self.max_batch_tokens)
        if isinstance(self.padding_idx, bool) or not isinstance(self.padding_idx, int):
            raise ValueError("padding_idx must be an int (-1: none), got %r" % (self.padding_idx,))
        _ratio("epsilon", self.epsilon)
        _bool("fp16", self.fp16)
        _local_rank(self.local_rank)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerModelConfig(TransformerConfig):
    """A whole encoder-decoder model: the layer fields (TransformerConfig) plus
    LightSeq's LSTransformer fields, how embeddings are shared and the ids
    generation starts and stops with."""
    vocab_size: int
    padding_idx: int
    num_encoder_layer: int
    num_decoder_layer: int
    src_vocab_size: int = 0         # 0: vocab_size (a joint vocabulary)
    share_embeddings: bool = True   # one table for source and target (needs one vocabulary)
    tie_output: bool = True         # output projection = target embedding table, transposed
    label_smoothing: float = 0.1
    eos_idx: int = 2
    bos_idx: int = -1               # -1: eos_idx (fairseq's convention)

    def __post_init__(self):
        super().__post_init__()
        for f in ("vocab_size", "num_encoder_layer", "num_decoder_layer"):
            _positive_int(f, getattr(self, f))
        if isinstance(self.src_vocab_size, bool) or not isinstance(self.src_vocab_size, int) or \
                self.src_vocab_size < 0:
            raise ValueError("src_vocab_size must be an int >= 0 (0: vocab_size), got %r"
                             % (self.src_vocab_size,))
        for f in ("share_embeddings", "tie_output"):
            _bool(f, getattr(self, f))
        _ratio("label_smoothing", self.label_smoothing)
        if self.share_embeddings and self.src_vocab_size not in (0, self.vocab_size):
            raise ValueError("share_embeddings needs src_vocab_size == vocab_size (%d), got %d"
                             % (self.vocab_size, self.src_vocab_size))
        for f, low in (("padding_idx", 0), ("eos_idx", 0), ("bos_idx", -1)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v < self.vocab_size:
                raise ValueError("%s must be an int in [%d, vocab_size = %d), got %r"
                                 % (f, low, self.vocab_size, v))
        self.embedding(source=True)

    @property
    def source_vocab_size(self):
        return self.src_vocab_size or self.vocab_size

    @property
    def start_idx(self):
        return self.eos_idx if self.bos_idx < 0 else self.bos_idx

    def layer(self) -> TransformerConfig:
        """The layer fields alone (what each encoder / decoder layer takes)."""
        return TransformerConfig(**{f.name: getattr(self, f.name)
                                    for f in dataclasses.fields(TransformerConfig)})

    def embedding(self, source) -> EmbeddingConfig:
        return EmbeddingConfig(
            vocab_size=self.source_vocab_size if source else self.vocab_size,
            embedding_dim=self.hidden_size, max_batch_tokens=self.max_batch_tokens,
            max_seq_len=self.max_seq_len, padding_idx=self.padding_idx,
            dropout=self.hidden_dropout_ratio, fp16=self.fp16, local_rank=self.local_rank)

    def cross_entropy(self) -> CrossEntropyConfig:
        return CrossEntropyConfig(max_batch_tokens=self.max_batch_tokens,
                                  padding_idx=self.padding_idx, epsilon=self.label_smoothing,
                                  fp16=self.fp16, local_rank=self.local_rank)


def _build(cls, preset, overrides):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError("unknown %s field(s): %s (valid: %s)"
                         % (cls.__name__, ", ".join(unknown), ", ".join(sorted(fields))))
    values = dict(preset)
    values.update(overrides)
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.name not in values and f.default is dataclasses.MISSING)
    if missing:
        raise ValueError("%s needs field(s): %s" % (cls.__name__, ", ".join(missing)))
    return cls(**values)


def _preset(model):
    if model is None:
        return {}
    if model in PRESETS:
        return dict(PRESETS[model], **_DROPOUT)
    raise ValueError("model must be one of %s (or None), got %r" % (", ".join(PRESETS), model))


def transformer_config(model: Optional[str] = None, **overrides) -> TransformerConfig:
    """A preset (`transformer-base`, `transformer-big`, `bert-base`, `bert-big`;
    dropouts 0.1) with `overrides` applied, or all fields given explicitly."""
    return _build(TransformerConfig, _preset(model), overrides)


def transformer_model_config(model: Optional[str] = None, **overrides) -> TransformerModelConfig:
    """LSTransformer.get_config: a layer preset (as transformer_config) plus
    the model fields (max_batch_tokens, max_seq_len, vocab_size, padding_idx,
    num_encoder_layer, num_decoder_layer, ...)."""
    return _build(TransformerModelConfig, _preset(model), overrides)


def embedding_config(**fields) -> EmbeddingConfig:
    return _build(EmbeddingConfig, {}, fields)


def cross_entropy_config(**fields) -> CrossEntropyConfig:
    return _build(CrossEntropyConfig, {}, fields)
