"""LightseqAttnSoftmax (CPU twin) vs native TF softmax + masks + autodiff,
with the numpy Philox dropout mask."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
import philox_ref
from lightseq_tf.ops._library import ops
from tolerances import REL, rel_err

DTYPES = [tf.float32, tf.float16, tf.bfloat16]


def native(scores, lengths, scale, causal, rate, seed, dy):
    b, h, lq, lk = scores.shape
    z = tf.cast(scores, tf.float64)
    vis = np.ones((b, 1, lq, lk), bool)
    if lengths is not None:
        vis &= (np.arange(lk)[None, :] < np.asarray(lengths)[:, None])[:, None, None, :]
    if causal:
        vis &= (np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq))[None, None]
    keep = philox_ref.keep_mask(seed, int(np.prod(scores.shape)), rate).reshape(scores.shape)
    m = tf.constant(keep * float(philox_ref.scale(rate)))
    with tf.GradientTape() as tape:
        tape.watch(z)
        logits = tf.where(vis, scale * z, tf.constant(-np.inf, tf.float64))
        p = tf.where(vis, tf.nn.softmax(logits, -1), tf.zeros_like(z))  # fully masked: 0
        y = p * m
    return y, tape.gradient(y, z, output_gradients=tf.cast(dy, tf.float64))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (2, 2, 16, 33), (1, 1, 1, 300), (3, 1, 4, 1)],
                         ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rate", [0.0, 0.3])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_matches_native(shape, dtype, causal, rate, with_lengths):
    b, h, lq, lk = shape
    scores = tf.cast(tf.random.stateless_normal(shape, [1, 2]) * 2, dtype)
    dy = tf.cast(tf.random.stateless_normal(shape, [3, 4]), dtype)
    lengths = None
    if with_lengths:
        lengths = np.random.default_rng(0).integers(1, lk + 1, b).astype(np.int32)
        lengths[0] = 0  # a fully masked batch row gives zeros, not NaN
    with tf.GradientTape() as tape:
        tape.watch(scores)
        y = lightseq_tf.attn_softmax(scores, lengths, 0.25, causal, rate, 9)
    dz = tape.gradient(y, scores, output_gradients=dy)
    ry, rdz = native(scores, lengths, 0.25, causal, rate, 9, dy)
    assert np.all(np.isfinite(tf.cast(y, tf.float32).numpy()))
    assert rel_err(y, ry.numpy()) < REL[dtype] and rel_err(dz, rdz.numpy()) < REL[dtype]


def test_dropout_mask_is_the_shared_philox_stream():
    scores = tf.random.stateless_normal([2, 2, 8, 100], [5, 6])
    y = lightseq_tf.attn_softmax(scores, rate=0.3, seed=5)
    keep = philox_ref.keep_mask(5, 3200, 0.3).reshape(2, 2, 8, 100)
    np.testing.assert_array_equal(y.numpy() != 0, keep)


def test_numerical_gradient_float32():
    scores = tf.random.stateless_normal([1, 2, 3, 5], [7, 8])
    f = lambda s: lightseq_tf.attn_softmax(s, [4], 0.5, True, 0.2, 3)  # noqa: E731
    theoretical, numerical = tf.test.compute_gradient(f, [scores], delta=1e-2)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("case,match", [
    ("rank", r"scores must have rank 4"),
    ("lengths_shape", r"lengths must have shape \[2\] \(batch\)"),
    ("length_too_long", r"lengths\[1\] = 9 is outside \[0, 6\] \(k_len\)"),
    ("negative_length", r"lengths\[0\] = -1 is outside"),
    ("rate", r"rate must be in \[0, 1\)"),
])
def test_bad_input_is_invalid_argument(case, match):
    s = tf.zeros([2, 1, 3, 6])
    seed = tf.constant(1, tf.int64)
    kw = dict(scale=1.0, causal=False, rate=0.1)
    args = {"rank": (tf.zeros([2, 3, 6]), tf.constant([6, 6]), seed),
            "lengths_shape": (s, tf.constant([6, 6, 6]), seed),
            "length_too_long": (s, tf.constant([6, 9]), seed),
            "negative_length": (s, tf.constant([-1, 2]), seed),
            "rate": (s, tf.constant([6, 6]), seed)}[case]
    if case == "rate":
        kw["rate"] = 1.0
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
        ops().lightseq_attn_softmax(*args, **kw)
