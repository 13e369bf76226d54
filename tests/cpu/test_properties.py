"""Property-based tests (hypothesis) of every CPU op against numpy over
random shapes, dtypes, rates, seeds and masks: the examples the fixed-case
tests do not pick. Bounded: derandomized (the same examples every CI run),
a fixed number of small examples per op (the whole file runs in seconds).
Bounds: tolerances.REL per dtype, times the number of roundings an op's
output goes through; the dropout masks come from the independent numpy
Philox (tests/common/philox_ref.py) and must match exactly."""
import math

import numpy as np
import pytest
import tensorflow as tf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lightseq_tf  # noqa: E402
import philox_ref  # noqa: E402
from tolerances import REL, rel_err  # noqa: E402

PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([tf.float32, tf.float16, tf.bfloat16])
RATES = st.sampled_from([0.0, 0.1, 0.5, 0.9])
SEEDS = st.integers(0, 2**62)


def rand(shape, seed, dtype, scale=1.0):
    return tf.cast(tf.random.stateless_normal(shape, [seed % 1000, 7]) * scale, dtype)


def f64(t):
    return tf.cast(t, tf.float64).numpy()


def mask(seed, shape, rate):
    keep = philox_ref.keep_mask(seed, int(np.prod(shape)), rate).reshape(shape)
    return keep * float(philox_ref.scale(rate))


@PROPS
@given(rows=st.integers(1, 9), hidden=st.integers(1, 300), dtype=DTYPES, seed=SEEDS)
def test_layer_norm(rows, hidden, dtype, seed):
    x = rand([rows, hidden], seed, dtype, 3.0) + tf.cast(1.5, dtype)
    g, b = rand([hidden], seed + 1, dtype), rand([hidden], seed + 2, dtype)
    y = lightseq_tf.ops.layer_norm(x, g, b, 1e-5)
    xx = f64(x)
    want = (xx - xx.mean(-1, keepdims=True)) / np.sqrt(xx.var(-1, keepdims=True) + 1e-5) * \
        f64(g) + f64(b)
    assert rel_err(y, want) < 2 * REL[dtype]


@PROPS
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3), rate=RATES, seed=SEEDS,
       dtype=DTYPES)
def test_dropout_is_the_philox_mask(shape, rate, seed, dtype):
    x = rand(shape, seed, dtype)
    y = lightseq_tf.ops.dropout(x, rate, seed)
    want = f64(x) * mask(seed, shape, rate)
    assert rel_err(y, want) < REL[dtype]
    np.testing.assert_array_equal(f64(y) == 0, (want == 0) & (f64(x) != 0) | (f64(x) == 0))


@PROPS
@given(rows=st.integers(1, 12), hidden=st.integers(1, 70), rate=RATES, seed=SEEDS, dtype=DTYPES,
       act=st.sampled_from(["relu", "gelu", "gelu_tanh"]))
def test_bias_dropout_family(rows, hidden, rate, seed, dtype, act):
    x, bias, res = (rand([rows, hidden], seed + i, dtype) for i in range(3))
    bias = bias[0]
    m = mask(seed, [rows, hidden], rate)
    got = lightseq_tf.ops.bias_dropout_residual(x, bias, res, rate, seed)
    z = f64(tf.cast(x, tf.float32) + tf.cast(bias, tf.float32))
    assert rel_err(got, f64(res) + m * z) < 2 * REL[dtype]
    got = lightseq_tf.ops.bias_act_dropout(x, bias, rate, seed, act)
    if act == "relu":
        a = np.maximum(z, 0)
    elif act == "gelu":
        a = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    else:
        a = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    assert rel_err(got, m * a) < 2 * REL[dtype] + (1e-6 if not a.any() else 0)


@PROPS
@given(b=st.integers(1, 3), h=st.integers(1, 3), lq=st.integers(1, 9), lk=st.integers(1, 40),
       causal=st.booleans(), dtype=DTYPES, seed=SEEDS, data=st.data())
def test_attn_softmax(b, h, lq, lk, causal, dtype, seed, data):
    if causal and lq > lk:
        lq = lk
    lengths = data.draw(st.lists(st.integers(0, lk), min_size=b, max_size=b))
    scores = rand([b, h, lq, lk], seed, dtype, 2.0)
    scale = 0.37
    got = lightseq_tf.ops.attn_softmax(scores, tf.constant(lengths, tf.int32), scale, causal)
    s = f64(scores) * scale
    vis = np.arange(lk)[None, None, None, :] < np.array(lengths)[:, None, None, None]
    if causal:
        vis = vis & (np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq))[None, None]
    m = np.where(vis, s, -np.inf).max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.where(vis, np.exp(np.where(vis, s - m, 0)), 0)
    want = e / np.maximum(e.sum(-1, keepdims=True), 1e-300)
    assert rel_err(got, want) < 2 * REL[dtype] + (1e-6 if not want.any() else 0)


@PROPS
@given(b=st.integers(1, 3), length=st.integers(1, 9), heads=st.integers(1, 4),
       d=st.integers(1, 9), splits=st.integers(1, 3), dtype=DTYPES, seed=SEEDS)
def test_split_merge_heads_are_permutations(b, length, heads, d, splits, dtype, seed):
    x = rand([b, length, splits * heads * d], seed, dtype)
    bias = rand([splits * heads * d], seed + 1, dtype)
    got = lightseq_tf.ops.split_heads(x, bias, heads, splits)
    want = (f64(tf.cast(x, tf.float32) + tf.cast(bias, tf.float32))
            .reshape(b, length, splits, heads, d).transpose(2, 0, 3, 1, 4))
    assert rel_err(got, want) < REL[dtype]
    back = lightseq_tf.ops.merge_heads(lightseq_tf.ops.split_heads(x, None, heads, splits))
    np.testing.assert_array_equal(f64(back), f64(x))


@PROPS
@given(rows=st.integers(1, 20), vocab=st.integers(2, 300), eps=st.sampled_from([0.0, 0.1, 0.3]),
       dtype=DTYPES, seed=SEEDS, pad_every=st.integers(0, 4))
def test_cross_entropy(rows, vocab, eps, dtype, seed, pad_every):
    from test_cross_entropy import numpy_reference
    logits = rand([rows, vocab], seed, dtype, 3.0)
    targets = tf.random.stateless_uniform([rows], [seed % 1000, 3], 0, vocab, dtype=tf.int32)
    pad = -1
    if pad_every:
        pad = 0
        targets = tf.where(tf.range(rows) % (pad_every + 1) == 0, 0, targets)
    loss, nll, _ = lightseq_tf.ops.cross_entropy(logits, targets, eps, pad)
    rl, rn, *_ = numpy_reference(logits, targets, eps, pad)
    bound = 1e-5 * (1 + np.abs(f64(logits)).max())  # float32 math on rounded logits
    np.testing.assert_allclose(f64(loss), rl, rtol=1e-5, atol=bound)
    np.testing.assert_allclose(f64(nll), rn, rtol=1e-5, atol=bound)


@PROPS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=2), vocab=st.integers(1, 50),
       hidden=st.integers(1, 40), offset=st.integers(0, 20), rate=RATES, seed=SEEDS,
       pad=st.sampled_from([-1, 0]))
def test_embedding(shape, vocab, hidden, offset, rate, seed, pad):
    from test_embedding import reference
    if pad >= vocab:
        pad = -1
    ids = tf.random.stateless_uniform(shape, [seed % 1000, 1], 0, vocab, dtype=tf.int32)
    table = rand([vocab, hidden], seed, tf.float32)
    y = lightseq_tf.embedding(ids, table, scale=1.5, pos_offset=offset, padding_id=pad,
                              rate=rate, seed=seed)
    if hidden >= 4:
        want, _ = reference(ids, table, tf.zeros(y.shape), 1.5, offset, pad, rate, seed)
    else:  # one timescale: NeurST's formula divides by n - 1 = 0 (NaN); ours uses inv = 1
        pos = np.arange(offset, offset + (shape[-1] if len(shape) > 1 else 1), dtype=np.float64)
        sig = np.zeros([len(pos), hidden])
        if hidden >= 2:
            sig[:, 0], sig[:, 1] = np.sin(pos), np.cos(pos)
        keep = mask(seed, shape + [hidden], rate)
        sig = sig if len(shape) > 1 else sig[0]
        valid = (ids.numpy() != pad)[..., None]
        want = keep * valid * (1.5 * f64(tf.gather(table, ids)) + sig)
    assert rel_err(y, want) < REL[tf.float32]


@PROPS
@given(n=st.integers(1, 3), cached=st.integers(0, 6), extra=st.integers(0, 3),
       pre_ln=st.booleans(), append=st.booleans(), seed=st.integers(0, 1000),
       act=st.sampled_from(["relu", "gelu"]))
def test_decoder_step(n, cached, extra, pre_ln, append, seed, act):
    from test_decoder_step_op import B, D, HEADS, case, np_step, params
    p = params(seed)
    x, keys, values, mem_k, mem_v, lengths = case(n=n, cached=cached + (0 if append else n + extra),
                                                   seed=seed)
    y, nk, nv = lightseq_tf.ops.decoder_step(x, keys, values, None if append else cached, mem_k,
                                             mem_v, lengths, p, HEADS, pre_ln, act,
                                             append=append)
    if append:
        pad = tf.zeros([B, n, HEADS, D])
        keys, values = tf.concat([keys, pad], 1), tf.concat([values, pad], 1)
    ry, rk, _ = np_step(p, x, keys, values, cached, mem_k, mem_v, lengths, pre_ln, act)
    assert rel_err(y, ry) < REL[tf.float32]
    assert rel_err(nk, rk) < REL[tf.float32]
