"""LightseqBiasActDropout (CPU twin) vs native TF activations + autodiff."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
import philox_ref
from tolerances import REL, rel_err

DTYPES = [tf.float32, tf.float16, tf.bfloat16]
NATIVE = {
    "relu": tf.nn.relu,
    "gelu": lambda z: tf.nn.gelu(z, approximate=False),
    "gelu_tanh": lambda z: tf.nn.gelu(z, approximate=True),
}


def inputs(shape, dtype, seed=0):
    x = tf.cast(tf.random.stateless_normal(shape, [seed, 1]) * 2, dtype)
    bias = tf.cast(tf.random.stateless_normal(shape[-1:], [seed, 2]), dtype)
    dy = tf.cast(tf.random.stateless_normal(shape, [seed, 3]), dtype)
    return x, bias, dy


def native(x, bias, dy, seed, rate, act):
    keep = philox_ref.keep_mask(seed, int(np.prod(x.shape)), rate).reshape(x.shape)
    m = tf.constant(keep.astype(np.float64) * float(philox_ref.scale(rate)))
    x64, b64 = tf.cast(x, tf.float64), tf.cast(bias, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([x64, b64])
        y = m * NATIVE[act](x64 + b64)
    return (y,) + tuple(tape.gradient(y, [x64, b64], output_gradients=tf.cast(dy, tf.float64)))


def ours(x, bias, dy, seed, rate, act):
    with tf.GradientTape() as tape:
        tape.watch([x, bias])
        y = lightseq_tf.bias_act_dropout(x, bias, rate, seed, activation=act)
    return (y,) + tuple(tape.gradient(y, [x, bias], output_gradients=dy))


@pytest.mark.parametrize("act", list(NATIVE))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(3, 1), (4, 1023), (2, 3, 2048)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.2])
def test_values_and_gradients_match_native(shape, dtype, act, rate):
    x, bias, dy = inputs(shape, dtype)
    got, ref = ours(x, bias, dy, 5, rate, act), native(x, bias, dy, 5, rate, act)
    for name, g, r in zip(("y", "dx", "dbias"), got, ref):
        assert g.dtype == dtype and g.shape == r.shape, name
        # relu' jumps at 0: inputs rounded to 16 bits can land exactly on it
        # for the reference and not for us (or vice versa) only at x+b == 0,
        # which these draws never hit; no extra slack is given.
        assert rel_err(g, r.numpy()) < REL[dtype], name


def test_numerical_gradient_float32():
    x, bias, _ = inputs((3, 6), tf.float32, seed=4)
    f = lambda x, b: lightseq_tf.bias_act_dropout(x, b, 0.3, 8, activation="gelu")  # noqa: E731
    theoretical, numerical = tf.test.compute_gradient(f, [x, bias], delta=1e-2)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=2e-3, rtol=2e-3)


def test_same_mask_as_plain_dropout():
    x, bias, _ = inputs((5, 96), tf.float32)
    y = lightseq_tf.bias_act_dropout(x, bias, 0.5, 123, activation="relu")
    np.testing.assert_allclose(y.numpy(), lightseq_tf.dropout(tf.nn.relu(x + bias), 0.5, 123).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation must be one of"):
        lightseq_tf.bias_act_dropout(tf.ones([2, 4]), tf.ones([4]), 0.1, 1, activation="swish")
    from lightseq_tf.ops._library import ops
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError), match="swish|activation"):
        ops().lightseq_bias_act_dropout(tf.ones([2, 4]), tf.ones([4]), tf.constant(1, tf.int64),
                                        activation="swish", rate=0.1)


@pytest.mark.parametrize("case,match", [
    ("bias_shape", r"bias must have shape \[4\]"),
    ("rate", r"rate must be in \[0, 1\)"),
])
def test_bad_input_is_invalid_argument(case, match):
    x = tf.ones([2, 4])
    args = {"bias_shape": (x, tf.ones([5]), 0.1), "rate": (x, tf.ones([4]), -1.0)}[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        lightseq_tf.bias_act_dropout(*args, seed=1)


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh"])
def test_gelu_keeps_relative_accuracy_in_the_negative_tail(act):
    """For z << 0, (1 + erf) / (1 + tanh) cancel in float32; the kernels use
    erfc / a sigmoid form instead. Reference: Python's float64 erfc / exp."""
    import math
    z = np.linspace(-8.0, 3.0, 221).astype(np.float32)
    if act == "gelu":
        ref = [0.5 * v * math.erfc(-v / math.sqrt(2)) for v in z.astype(np.float64)]
    else:
        ref = [v / (1 + math.exp(-2 * math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
               for v in z.astype(np.float64)]
    y = lightseq_tf.bias_act_dropout(z[None, :], np.zeros(z.size, np.float32), 0.0, 1,
                                     activation=act).numpy()[0]
    ref = np.array(ref)
    np.testing.assert_allclose(y, ref, rtol=2e-5, atol=0)
