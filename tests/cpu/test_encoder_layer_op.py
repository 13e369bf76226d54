"""The whole-layer encoder op (LightseqEncoderLayer and its gradient op)
against the layer composed of the single fused ops around TF's MatMul: with
dropout on, the same seed must give the same function (the same masks), so
outputs and all gradients agree to float32 GEMM reassociation. Plus the op's
own input checks."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from lightseq_tf import config as cfg
from lightseq_tf.ops._library import ops
from lightseq_tf.ops.encoder_layer import PARAMS, encoder_layer
from tolerances import rel_err

H, HEADS, F = 32, 4, 48
PATHS = {  # op parameter -> NeurST-relative variable path
    "ln1_gamma": "self_attention_prepost_wrapper/ln/gamma",
    "ln1_beta": "self_attention_prepost_wrapper/ln/beta",
    "qkv_kernel": "self_attention_prepost_wrapper/self_attention/qkv_transform/kernel",
    "qkv_bias": "self_attention_prepost_wrapper/self_attention/qkv_transform/bias",
    "out_kernel": "self_attention_prepost_wrapper/self_attention/output_transform/kernel",
    "out_bias": "self_attention_prepost_wrapper/self_attention/output_transform/bias",
    "ln2_gamma": "ffn_prepost_wrapper/ln/gamma", "ln2_beta": "ffn_prepost_wrapper/ln/beta",
    "ffn1_kernel": "ffn_prepost_wrapper/ffn/dense1/kernel",
    "ffn1_bias": "ffn_prepost_wrapper/ffn/dense1/bias",
    "ffn2_kernel": "ffn_prepost_wrapper/ffn/dense2/kernel",
    "ffn2_bias": "ffn_prepost_wrapper/ffn/dense2/bias"}
# float32, both sides the same kernels and masks; only GEMM summation order
# differs (Eigen vs TF's MatMul, <= 3H terms) across ~15 dependent steps.
FP32_TOL = 1e-5


def built_layer(pre_ln, act, rates=(0.1, 0.2, 0.1)):
    c = cfg.transformer_config(max_batch_tokens=512, max_seq_len=32, hidden_size=H,
                               intermediate_size=F, nhead=HEADS, attn_prob_dropout_ratio=rates[0],
                               activation_dropout_ratio=rates[1], hidden_dropout_ratio=rates[2],
                               pre_layer_norm=pre_ln, activation_fn=act)
    layer = lightseq_tf.LSTransformerEncoderLayer(c)
    layer(tf.zeros([1, 3, H]))
    for i, v in enumerate(layer.trainable_weights):
        v.assign(tf.random.stateless_normal(v.shape, [7, i]) * 0.3
                 + (1.0 if "gamma" in v.name else 0.0))
    return layer


@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_tanh"])
def test_op_equals_composition_with_dropout(pre_ln, act):
    layer = built_layer(pre_ln, act)
    w = layer.named_weights()
    x = tf.random.stateless_normal([3, 13, H], [1, 1])  # L = 13: not a multiple of 8
    lengths = tf.constant([13, 5, 1])
    dy = tf.random.stateless_normal([3, 13, H], [2, 2])
    seed = tf.constant(987654321, tf.int64)
    variables = [w[PATHS[p]] for p in PARAMS]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        composed = layer._forward_composed(x, lengths, seed, True)
        op = encoder_layer(x, lengths, {p: w[PATHS[p]] for p in PARAMS}, HEADS, pre_ln, act,
                           0.1, 0.2, 0.1, seed)
    assert rel_err(op, composed.numpy()) < FP32_TOL
    want = tape.gradient(composed, [x] + variables, output_gradients=dy)
    got = tape.gradient(op, [x] + variables, output_gradients=dy)
    for name, g, r in zip(["x"] + list(PARAMS), got, want):
        assert rel_err(g, r.numpy()) < FP32_TOL, name
    # Another seed is another function (the masks are in use).
    other = encoder_layer(x, lengths, {p: w[PATHS[p]] for p in PARAMS}, HEADS, pre_ln, act,
                          0.1, 0.2, 0.1, seed + 4)
    assert rel_err(other, op.numpy()) > 1e-2


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_types_match_float32(dtype):
    """16-bit activations, float32 accumulation: within the layer test's
    mixed-precision bounds (tests/cpu/test_encoder_layer.py, TOL)."""
    layer = built_layer(True, "relu", rates=(0.0, 0.0, 0.0))
    w = layer.named_weights()
    x = tf.random.stateless_normal([2, 9, H], [3, 3])
    lengths = tf.constant([9, 4])
    ref = encoder_layer(x, lengths, {p: w[PATHS[p]] for p in PARAMS}, HEADS, True)
    got = encoder_layer(tf.cast(x, dtype), lengths,
                        {p: tf.cast(w[PATHS[p]], dtype) for p in PARAMS}, HEADS, True)
    assert got.dtype == dtype
    assert rel_err(tf.cast(got, tf.float32), ref.numpy()) < (1e-2 if dtype == tf.float16 else 8e-2)


def raw_inputs(b=2, length=5, h=H, f=F):
    x = tf.random.stateless_normal([b, length, h], [4, 4])
    shapes = [[h], [h], [h, 3 * h], [3 * h], [h, h], [h], [h], [h], [h, f], [f], [f, h], [h]]
    params = [tf.random.stateless_normal(s, [5, i]) * 0.1 for i, s in enumerate(shapes)]
    return x, tf.fill([b], length), params


def run_raw(x, lengths, params, **attrs):
    kw = dict(heads=HEADS, pre_ln=True, activation="relu")
    kw.update(attrs)
    return ops().lightseq_encoder_layer(x, lengths, tf.constant(1, tf.int64), *params, **kw)


def test_bad_input_is_rejected_with_the_argument_named():
    x, lengths, params = raw_inputs()
    err = (tf.errors.InvalidArgumentError, ValueError)
    with pytest.raises(err, match="rank 3"):
        run_raw(x[0], lengths, params)
    with pytest.raises(err, match="divisible by heads = 5"):
        run_raw(x, lengths, params, heads=5)
    bad = list(params)
    bad[4] = tf.zeros([H, H + 1])
    with pytest.raises(err, match="out_kernel must have shape"):
        run_raw(x, lengths, bad)
    with pytest.raises(err, match=r"lengths\[1\] = 6 is outside \[0, 5\]"):
        run_raw(x, tf.constant([5, 6]), params)
    with pytest.raises(err, match=r"lengths\[0\] = -1"):
        run_raw(x, tf.constant([-1, 2]), params)
    with pytest.raises(err, match="lengths must have shape"):
        run_raw(x, tf.constant([5, 5, 5]), params)
    with pytest.raises(err, match="attn_dropout must be in"):
        run_raw(x, lengths, params, attn_dropout=1.0)
    with pytest.raises(err, match="hidden_dropout must be in"):
        run_raw(x, lengths, params, hidden_dropout=-0.1)
    with pytest.raises(err, match="epsilon must be"):
        run_raw(x, lengths, params, epsilon=0.0)
    with pytest.raises(err, match="activation"):
        run_raw(x, lengths, params, activation="swish")
    with pytest.raises(ValueError, match="params lacks qkv_bias"):
        encoder_layer(x, lengths, {p: t for p, t in zip(PARAMS, params) if p != "qkv_bias"},
                      HEADS, True)


def test_grad_op_checks_saved_and_dy():
    x, lengths, params = raw_inputs()
    y, saved = run_raw(x, lengths, params)
    grad = ops().lightseq_encoder_layer_grad
    kw = dict(heads=HEADS, pre_ln=True, activation="relu")
    seed = tf.constant(1, tf.int64)
    dx = grad(tf.ones_like(y), x, lengths, seed, *params, saved, **kw)[0]
    assert dx.shape == x.shape
    err = (tf.errors.InvalidArgumentError, ValueError)
    with pytest.raises(err, match="saved must be the forward's"):
        grad(tf.ones_like(y), x, lengths, seed, *params, saved[:-1], **kw)
    with pytest.raises(err, match="saved must be the forward's"):  # another layout's size
        grad(tf.ones_like(y), x, lengths, seed, *params, saved, **dict(kw, heads=2))
    with pytest.raises(err, match="dy must have the shape of x"):
        grad(tf.ones_like(y)[:, :4], x, lengths, seed, *params, saved, **kw)


def test_empty_batch_gives_empty_output_and_zero_gradients():
    x, lengths, params = raw_inputs(b=0)
    with tf.GradientTape() as tape:
        tape.watch(params)
        y = encoder_layer(x, lengths, dict(zip(PARAMS, params)), HEADS, True)
        total = tf.reduce_sum(y)
    assert y.shape == (0, 5, H)
    for g in tape.gradient(total, params):
        np.testing.assert_array_equal(g.numpy(), 0.0)
