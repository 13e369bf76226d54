"""LightseqCrossEntropy (CPU twin) vs numpy float64 and vs NeurST's own
formula built from native TF ops (soft-target softmax cross-entropy)."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from lightseq_tf.ops._library import ops
from tolerances import REL, rel_err

DTYPES = [tf.float32, tf.float16, tf.bfloat16]


def inputs(shape, vocab, dtype, pad=-1, seed=0, tidx=tf.int32):
    logits = tf.cast(tf.random.stateless_normal(shape + (vocab,), [seed, 1]) * 3, dtype)
    targets = tf.random.stateless_uniform(shape, [seed, 2], 0, vocab, dtype=tf.int32)
    if pad >= 0:  # every third token is padding
        flat = tf.reshape(targets, [-1])
        flat = tf.where(tf.range(tf.size(flat)) % 3 == 1, pad, flat)
        targets = tf.reshape(flat, shape)
    return logits, tf.cast(targets, tidx)


def numpy_reference(logits, targets, eps, pad):
    z = tf.cast(logits, tf.float64).numpy()
    t = targets.numpy()
    v = z.shape[-1]
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    logp = z - lse[..., None]
    q = np.full(z.shape, eps / (v - 1) if v > 1 else 0.0)
    tt = np.where(t == pad, 0, t)
    np.put_along_axis(q, tt[..., None], 1 - eps, -1)
    keep = (t != pad).astype(np.float64)
    loss = -(q * logp).sum(-1) * keep
    nll = -np.take_along_axis(logp, tt[..., None], -1)[..., 0] * keep
    return loss, nll, q, np.exp(logp), keep


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape,vocab", [((5,), 2), ((3, 7), 33), ((64,), 1000), ((2, 3), 32000)],
                         ids=str)
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("tidx", [tf.int32, tf.int64], ids=lambda d: d.name)
def test_values_and_gradient_match_numpy(shape, vocab, dtype, eps, tidx):
    pad = 0
    logits, targets = inputs(shape, vocab, dtype, pad=pad, tidx=tidx)
    gl = tf.random.stateless_normal(shape, [3, 4])
    gn = tf.random.stateless_normal(shape, [5, 6])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss, nll, sums = lightseq_tf.cross_entropy(logits, targets, eps, pad)
        obj = tf.reduce_sum(loss * gl) + tf.reduce_sum(nll * gn) + 0.5 * sums[0] - 2.0 * sums[1]
    dlogits = tape.gradient(obj, logits)
    rl, rn, q, p, keep = numpy_reference(logits, targets, eps, pad)
    assert rel_err(loss, rl) < 1e-5 and rel_err(nll, rn) < 1e-5
    np.testing.assert_allclose(sums.numpy(), [rl.sum(), rn.sum(), keep.sum()], rtol=1e-5)
    a = (gl.numpy() + 0.5)[..., None] * keep[..., None]
    b = (gn.numpy() - 2.0)[..., None] * keep[..., None]
    onehot = (q == q.max(-1, keepdims=True)).astype(np.float64) if eps > 0 else q
    rd = a * (p - q) + b * (p - onehot)
    assert dlogits.dtype == dtype
    assert rel_err(dlogits, rd) < REL[dtype]


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_loss_equals_neurst_soft_target_cross_entropy(eps):
    """NeurST: softmax_cross_entropy_with_logits(one_hot(on=1-eps, off=eps/(V-1)))."""
    vocab = 50
    logits, targets = inputs((4, 9), vocab, tf.float32, seed=7)
    soft = tf.one_hot(targets, vocab, on_value=1 - eps, off_value=eps / (vocab - 1))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        native = tf.nn.softmax_cross_entropy_with_logits(labels=soft, logits=logits)
        loss, _, _ = lightseq_tf.cross_entropy(logits, targets, eps)
    np.testing.assert_allclose(loss.numpy(), native.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss, logits).numpy(),
                               tape.gradient(native, logits).numpy(), rtol=1e-5, atol=1e-6)


def test_numerical_gradient_float32():
    logits, targets = inputs((3,), 6, tf.float32, seed=2)
    f = lambda z: lightseq_tf.cross_entropy(z, targets, 0.2)[0]  # noqa: E731
    theoretical, numerical = tf.test.compute_gradient(f, [logits], delta=1e-2)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3, rtol=2e-3)


def test_padding_tokens_are_zero_and_not_counted():
    logits, targets = inputs((12,), 10, tf.float32, pad=3)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss, nll, sums = lightseq_tf.cross_entropy(logits, targets, 0.1, padding_id=3)
        total = sums[0]
    d = tape.gradient(total, logits).numpy()
    is_pad = targets.numpy() == 3
    assert np.all(loss.numpy()[is_pad] == 0) and np.all(nll.numpy()[is_pad] == 0)
    assert np.all(d[is_pad] == 0) and np.all(np.abs(d[~is_pad]).sum(-1) > 0)
    assert sums.numpy()[2] == (~is_pad).sum()


def test_eps_zero_loss_is_nll_and_empty_batch():
    logits, targets = inputs((8,), 17, tf.float32)
    loss, nll, _ = lightseq_tf.cross_entropy(logits, targets, 0.0)
    np.testing.assert_allclose(loss.numpy(), nll.numpy(), rtol=1e-6)
    loss, nll, sums = lightseq_tf.cross_entropy(tf.zeros([0, 5]), tf.zeros([0], tf.int32), 0.1)
    assert loss.shape == (0,) and np.all(sums.numpy() == 0)


def test_non_finite_logits_poison_only_their_row():
    logits = tf.constant([[0.0, float("nan"), 1.0], [0.0, 1.0, 2.0]])
    loss, _, sums = lightseq_tf.cross_entropy(logits, tf.constant([0, 1]), 0.1)
    assert np.isnan(loss.numpy()[0]) and np.isfinite(loss.numpy()[1]) and np.isnan(sums.numpy()[0])


@pytest.mark.parametrize("case,match", [
    ("target_high", r"targets\[1\] = 7 is outside \[0, 7\) and is not padding_id \(-1\)"),
    ("target_negative", r"targets\[0\] = -5 is outside \[0, 7\)"),
    ("eps", r"epsilon \(label smoothing\) must be in \[0, 1\)"),
    ("vocab1", r"vocab size \(last dimension of logits\) must be >= 2 with label smoothing"),
    ("shape", r"targets must have shape logits.shape\[:-1\]"),
])
def test_bad_input_is_invalid_argument(case, match):
    z = tf.zeros([2, 7])
    args = {"target_high": (z, tf.constant([0, 7]), 0.1),
            "target_negative": (z, tf.constant([-5, 0]), 0.1),
            "eps": (z, tf.constant([0, 1]), 1.0),
            "vocab1": (tf.zeros([2, 1]), tf.constant([0, 0]), 0.1),
            "shape": (z, tf.constant([0, 1, 2]), 0.1)}[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        lightseq_tf.cross_entropy(*args)


def test_grad_op_rejects_out_of_range_targets():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"targets\[0\] = 9"):
        ops().lightseq_cross_entropy_grad(tf.ones([1]), tf.ones([1]), tf.zeros([1, 4]),
                                          tf.constant([9]), tf.zeros([1]), tf.zeros([1]),
                                          epsilon=0.1)


def test_confident_tokens_keep_their_small_loss_and_gradient():
    """nll = log1p(exp(-20)) ~ 2.06e-9 must not round to 0, nor must its
    gradient p_t - 1 = -2.06e-9 (computed as expm1(-nll))."""
    logits = tf.constant([[20.0, 0.0], [0.0, 9.0]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        _, nll, _ = lightseq_tf.cross_entropy(logits, tf.constant([0, 1]), 0.0)
    d = tape.gradient(nll, logits).numpy()
    a, b = np.exp(-20.0) / (1 + np.exp(-20.0)), np.exp(-9.0) / (1 + np.exp(-9.0))
    np.testing.assert_allclose(nll.numpy(), [np.log1p(np.exp(-20.0)), np.log1p(np.exp(-9.0))],
                               rtol=1e-5)
    np.testing.assert_allclose(d, [[-a, a], [b, -b]], rtol=1e-5)
