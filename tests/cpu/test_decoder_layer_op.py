"""The whole-layer decoder op (LightseqDecoderLayer and its gradient op)
against the decoder layer composed of the single fused ops around TF's
MatMul: with dropout on, the same seed must give the same function, so the
output, dx, dmemory and all twenty parameter gradients agree to float32 GEMM
reassociation. Plus the op's own input checks."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from lightseq_tf import config as cfg
from lightseq_tf.ops._library import ops
from lightseq_tf.ops.decoder_layer import PARAMS, decoder_layer
from test_encoder_layer_op import FP32_TOL
from tolerances import rel_err

H, HEADS, F = 32, 4, 48
SA = "self_attention_prepost_wrapper/"
ED = "encdec_attention_prepost_wrapper/"
FF = "ffn_prepost_wrapper/"
PATHS = dict(zip(PARAMS, [
    SA + "ln/gamma", SA + "ln/beta", SA + "self_attention/qkv_transform/kernel",
    SA + "self_attention/qkv_transform/bias", SA + "self_attention/output_transform/kernel",
    SA + "self_attention/output_transform/bias", ED + "ln/gamma", ED + "ln/beta",
    ED + "encdec_attention/q_transform/kernel", ED + "encdec_attention/q_transform/bias",
    ED + "encdec_attention/kv_transform/kernel", ED + "encdec_attention/kv_transform/bias",
    ED + "encdec_attention/output_transform/kernel", ED + "encdec_attention/output_transform/bias",
    FF + "ln/gamma", FF + "ln/beta", FF + "ffn/dense1/kernel", FF + "ffn/dense1/bias",
    FF + "ffn/dense2/kernel", FF + "ffn/dense2/bias"]))


def built_layer(pre_ln, act, rates=(0.1, 0.2, 0.1)):
    c = cfg.transformer_config(max_batch_tokens=512, max_seq_len=32, hidden_size=H,
                               intermediate_size=F, nhead=HEADS, attn_prob_dropout_ratio=rates[0],
                               activation_dropout_ratio=rates[1], hidden_dropout_ratio=rates[2],
                               pre_layer_norm=pre_ln, activation_fn=act)
    layer = lightseq_tf.LSTransformerDecoderLayer(c)
    layer(tf.zeros([1, 3, H]), memory=tf.zeros([1, 2, H]))
    for i, v in enumerate(layer.trainable_weights):
        v.assign(tf.random.stateless_normal(v.shape, [8, i]) * 0.3
                 + (1.0 if "gamma" in v.name else 0.0))
    return layer


@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_tanh"])
def test_op_equals_composition_with_dropout(pre_ln, act):
    layer = built_layer(pre_ln, act)
    w = layer.named_weights()
    x = tf.random.stateless_normal([3, 11, H], [1, 1])
    memory = tf.random.stateless_normal([3, 6, H], [1, 2])
    lengths = tf.constant([6, 2, 5])
    dy = tf.random.stateless_normal([3, 11, H], [2, 2])
    seed = tf.constant(123456789, tf.int64)
    variables = [w[PATHS[p]] for p in PARAMS]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, memory])
        mem = layer.memorize_memory(memory)["memory"]
        k, v = (tf.transpose(mem[n], [0, 2, 1, 3]) for n in ("keys", "values"))
        composed = layer._forward(x, k, v, lengths, None, seed, True)
        op = decoder_layer(x, memory, lengths, {p: w[PATHS[p]] for p in PARAMS}, HEADS, pre_ln,
                           act, 0.1, 0.2, 0.1, seed)
    assert rel_err(op, composed.numpy()) < FP32_TOL
    want = tape.gradient(composed, [x, memory] + variables, output_gradients=dy)
    got = tape.gradient(op, [x, memory] + variables, output_gradients=dy)
    for name, g, r in zip(["x", "memory"] + list(PARAMS), got, want):
        assert rel_err(g, r.numpy()) < FP32_TOL, name
    other = decoder_layer(x, memory, lengths, {p: w[PATHS[p]] for p in PARAMS}, HEADS, pre_ln,
                          act, 0.1, 0.2, 0.1, seed + 6)
    assert rel_err(other, op.numpy()) > 1e-2


def raw_inputs(b=2, length=5, mem=4):
    x = tf.random.stateless_normal([b, length, H], [4, 4])
    memory = tf.random.stateless_normal([b, mem, H], [4, 5])
    shapes = [[H], [H], [H, 3 * H], [3 * H], [H, H], [H], [H], [H], [H, H], [H], [H, 2 * H],
              [2 * H], [H, H], [H], [H], [H], [H, F], [F], [F, H], [H]]
    params = [tf.random.stateless_normal(s, [5, i]) * 0.1 for i, s in enumerate(shapes)]
    return x, memory, tf.fill([b], mem), params


def run_raw(x, memory, lengths, params, **attrs):
    kw = dict(heads=HEADS, pre_ln=True, activation="relu")
    kw.update(attrs)
    return ops().lightseq_decoder_layer(x, memory, lengths, tf.constant(1, tf.int64), *params,
                                        **kw)


def test_bad_input_is_rejected_with_the_argument_named():
    x, memory, lengths, params = raw_inputs()
    err = (tf.errors.InvalidArgumentError, ValueError)
    with pytest.raises(err, match="memory must have shape"):
        run_raw(x, memory[:1], lengths, params)
    with pytest.raises(err, match="memory must have shape"):
        run_raw(x, memory[:, :, :-1], lengths, params)
    bad = list(params)
    bad[10] = tf.zeros([H, H])
    with pytest.raises(err, match="kv_kernel must have shape"):
        run_raw(x, memory, lengths, bad)
    with pytest.raises(err, match=r"mem_lengths\[1\] = 5 is outside \[0, 4\]"):
        run_raw(x, memory, tf.constant([4, 5]), params)
    with pytest.raises(err, match="divisible by heads = 3"):
        run_raw(x, memory, lengths, params, heads=3)
    with pytest.raises(err, match="act_dropout must be in"):
        run_raw(x, memory, lengths, params, act_dropout=1.5)
    with pytest.raises(err, match="memory must have at least one position"):
        run_raw(x, memory[:, :0], tf.zeros([2], tf.int32), params)
    y, saved = run_raw(x, memory, lengths, params)
    grad = ops().lightseq_decoder_layer_grad
    kw = dict(heads=HEADS, pre_ln=True, activation="relu")
    seed = tf.constant(1, tf.int64)
    with pytest.raises(err, match="saved must be the forward's"):
        grad(tf.ones_like(y), x, memory, lengths, seed, *params, saved[1:], **kw)
    with pytest.raises(err, match="dy must have the shape of x"):
        grad(tf.ones_like(y)[:1], x, memory, lengths, seed, *params, saved, **kw)


def test_empty_batch_gives_empty_output_and_zero_gradients():
    x, memory, lengths, params = raw_inputs(b=0)
    with tf.GradientTape() as tape:
        tape.watch([memory] + params)
        y = decoder_layer(x, memory, lengths, dict(zip(PARAMS, params)), HEADS, True)
        total = tf.reduce_sum(y)
    assert y.shape == (0, 5, H)
    for g in tape.gradient(total, [memory] + params):
        np.testing.assert_array_equal(g.numpy(), 0.0)
