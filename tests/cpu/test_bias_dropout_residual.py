"""LightseqBiasDropoutResidual (CPU twin) vs numpy and native TF autodiff."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
import philox_ref
from tolerances import REL, rel_err

DTYPES = [tf.float32, tf.float16, tf.bfloat16]


def inputs(shape, dtype, seed=0):
    g = lambda i: tf.cast(tf.random.stateless_normal(shape, [seed, i]), dtype)  # noqa: E731
    bias = tf.cast(tf.random.stateless_normal(shape[-1:], [seed, 9]), dtype)
    return g(1), bias, g(2), g(3)


def native(x, bias, residual, dy, seed, rate):
    """Reference from native TF ops in float64 with the numpy Philox mask."""
    keep = philox_ref.keep_mask(seed, int(np.prod(x.shape)), rate).reshape(x.shape)
    m = tf.constant(keep.astype(np.float64) * float(philox_ref.scale(rate)))
    x64, b64, r64 = (tf.cast(t, tf.float64) for t in (x, bias, residual))
    with tf.GradientTape() as tape:
        tape.watch([x64, b64, r64])
        y = r64 + m * (x64 + b64)
    return (y,) + tuple(tape.gradient(y, [x64, b64, r64], output_gradients=tf.cast(dy, tf.float64)))


def ours(x, bias, residual, dy, seed, rate):
    with tf.GradientTape() as tape:
        tape.watch([x, bias, residual])
        y = lightseq_tf.bias_dropout_residual(x, bias, residual, rate, seed)
    return (y,) + tuple(tape.gradient(y, [x, bias, residual], output_gradients=dy))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(3, 1), (5, 8), (4, 1023), (2, 3, 512)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.6])
def test_values_and_gradients_match_native(shape, dtype, rate):
    args = inputs(shape, dtype)
    got, ref = ours(*args, 42, rate), native(*args, 42, rate)
    for name, g, r in zip(("y", "dx", "dbias", "dresidual"), got, ref):
        assert g.dtype == dtype and g.shape == r.shape, name
        assert rel_err(g, r.numpy()) < REL[dtype], name


def test_same_mask_as_plain_dropout():
    x, bias, residual, _ = inputs((6, 64), tf.float32)
    y = lightseq_tf.bias_dropout_residual(x, bias, residual, 0.3, 77)
    want = lightseq_tf.dropout(x + bias, 0.3, 77) + residual
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


def test_empty_batch_gives_zero_dbias():
    x = tf.zeros([0, 16])
    b = tf.ones([16])
    with tf.GradientTape() as tape:
        tape.watch(b)
        y = lightseq_tf.bias_dropout_residual(x, b, x, 0.5, 1)
    assert y.shape == (0, 16)
    np.testing.assert_array_equal(tape.gradient(y, b).numpy(), np.zeros(16, np.float32))


@pytest.mark.parametrize("case,match", [
    ("bias_shape", r"bias must have shape \[8\]"),
    ("residual_shape", r"residual must have the shape of x"),
    ("rate", r"rate must be in \[0, 1\)"),
    ("scalar_x", r"x must have rank >= 1"),
])
def test_bad_input_is_invalid_argument(case, match):
    x, b = tf.ones([2, 8]), tf.ones([8])
    args = {"bias_shape": (x, tf.ones([7]), x, 0.1),
            "residual_shape": (x, b, tf.ones([3, 8]), 0.1),
            "rate": (x, b, x, 1.5),
            "scalar_x": (tf.constant(1.0), tf.ones([1]), tf.constant(1.0), 0.1)}[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        lightseq_tf.bias_dropout_residual(*args, seed=3)
