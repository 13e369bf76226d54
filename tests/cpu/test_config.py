"""lightseq_tf.config: LightSeq presets and field checks."""
import dataclasses

import pytest

import lightseq_tf
from lightseq_tf import config as cfg

BASE = dict(max_batch_tokens=4096, max_seq_len=256)


@pytest.mark.parametrize("model,hidden,ffn,heads,pre_ln,act", [
    ("transformer-base", 512, 2048, 8, True, "relu"),
    ("transformer-big", 1024, 4096, 16, True, "relu"),
    ("bert-base", 768, 3072, 12, False, "gelu"),
    ("bert-big", 1024, 4096, 16, False, "gelu")])
def test_presets(model, hidden, ffn, heads, pre_ln, act):
    c = cfg.transformer_config(model, **BASE)
    assert (c.hidden_size, c.intermediate_size, c.nhead, c.pre_layer_norm, c.activation_fn) == \
        (hidden, ffn, heads, pre_ln, act)
    assert c.attn_prob_dropout_ratio == c.activation_dropout_ratio == c.hidden_dropout_ratio == 0.1
    assert cfg.transformer_config(**dataclasses.asdict(c)) == c


def test_overrides_apply():
    c = cfg.transformer_config("transformer-base", hidden_dropout_ratio=0.3, fp16=True, **BASE)
    assert c.hidden_dropout_ratio == 0.3 and c.fp16 and c.hidden_size == 512


@pytest.mark.parametrize("kwargs,match", [
    (dict(model="transformer-huge"), "model must be one of"),
    (dict(model="transformer-base", nhead=7), r"hidden_size \(512\) must be divisible by nhead \(7\)"),
    (dict(model="transformer-base", activation_fn="swish"), "activation_fn must be one of"),
    (dict(model="transformer-base", hidden_dropout_ratio=1.0), r"hidden_dropout_ratio must be a float in \[0, 1\)"),
    (dict(model="transformer-base", attn_prob_dropout_ratio=-0.1), "attn_prob_dropout_ratio"),
    (dict(model="transformer-base", hidden_size=0), "hidden_size must be a positive int"),
    (dict(model="transformer-base", pre_layer_norm=1), "pre_layer_norm must be a bool"),
    (dict(model="transformer-base", local_rank=-2), "local_rank"),
    (dict(model="transformer-base", max_seq_len=8192), r"max_seq_len \(8192\) must be <= max_batch_tokens"),
    (dict(model="transformer-base", colour="red"), "unknown TransformerConfig field.*colour"),
])
def test_bad_transformer_configs_name_the_field(kwargs, match):
    kw = dict(BASE)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        cfg.transformer_config(**kw)


def test_missing_fields_are_named():
    with pytest.raises(ValueError, match="needs field.*hidden_size"):
        cfg.transformer_config(**BASE)
    with pytest.raises(ValueError, match="needs field.*max_seq_len"):
        cfg.transformer_config("bert-base", max_batch_tokens=10)


def test_embedding_and_cross_entropy_configs():
    e = lightseq_tf.LSTransformerEmbeddingLayer.get_config(
        vocab_size=10, embedding_dim=8, max_batch_tokens=64, max_seq_len=16, padding_idx=0)
    assert e == cfg.embedding_config(vocab_size=10, embedding_dim=8, max_batch_tokens=64,
                                     max_seq_len=16, padding_idx=0, dropout=0.1)
    with pytest.raises(ValueError, match=r"padding_idx must be an int in \[-1, vocab_size = 10\)"):
        cfg.embedding_config(vocab_size=10, embedding_dim=8, max_batch_tokens=64,
                             max_seq_len=16, padding_idx=10)
    c = lightseq_tf.LSCrossEntropyLayer.get_config(max_batch_tokens=64, padding_idx=0,
                                                   epsilon=0.2)
    assert c.epsilon == 0.2
    with pytest.raises(ValueError, match="epsilon"):
        cfg.cross_entropy_config(max_batch_tokens=64, padding_idx=0, epsilon=1.5)
