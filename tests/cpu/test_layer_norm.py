"""LightseqLayerNorm (CPU twin) vs numpy and vs native Keras LayerNormalization."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from lightseq_tf.ops._library import ops
from tolerances import REL, rel_err

DTYPES = [tf.float32, tf.float16, tf.bfloat16]
SHAPES = [(2, 1), (3, 3), (5, 64), (4, 1023), (2, 4097), (2, 3, 16), (2, 2, 2, 24), (1, 16384)]


def inputs(shape, dtype, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    h = shape[-1]
    x = tf.cast(rng.normal(offset, 2.0, shape), dtype)  # non-zero mean: tests the variance form
    g = tf.cast(rng.uniform(0.5, 1.5, h), dtype)
    b = tf.cast(rng.normal(0, 1, h), dtype)
    dy = tf.cast(rng.normal(0, 1, shape), dtype)
    return x, g, b, dy


def numpy_reference(x, g, b, dy, eps):
    """float64 forward and analytic backward from the rounded inputs."""
    x, g, b, dy = (t.numpy().astype(np.float64) for t in (tf.cast(v, tf.float64) for v in (x, g, b, dy)))
    mean = x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)
    xh = (x - mean) * rstd
    y = xh * g + b
    gd = dy * g
    dx = rstd * (gd - gd.mean(-1, keepdims=True) - xh * (gd * xh).mean(-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dict(y=y, mean=mean[..., 0], rstd=rstd[..., 0], dx=dx,
                dgamma=(dy * xh).sum(lead), dbeta=dy.sum(lead))


def ours(x, g, b, dy, eps):
    with tf.GradientTape() as tape:
        tape.watch([x, g, b])
        y = lightseq_tf.layer_norm(x, g, b, epsilon=eps)
    dx, dg, db = tape.gradient(y, [x, g, b], output_gradients=dy)
    _, mean, rstd = ops().lightseq_layer_norm(x, g, b, epsilon=eps)
    return dict(y=y, mean=mean, rstd=rstd, dx=dx, dgamma=dg, dbeta=db)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_numpy_float64(shape, dtype):
    eps = 1e-5
    x, g, b, dy = inputs(shape, dtype)
    got, ref = ours(x, g, b, dy, eps), numpy_reference(x, g, b, dy, eps)
    for k in ("y", "dx", "dgamma", "dbeta"):
        assert got[k].dtype == dtype and got[k].shape == ref[k].shape, k
        if shape[-1] == 1 and k in ("dx",):  # dx is exactly 0 when H == 1
            assert np.all(tf.cast(got[k], tf.float32).numpy() == 0)
            continue
        assert rel_err(got[k], ref[k]) < REL[dtype], k
    assert rel_err(got["mean"], ref["mean"]) < 1e-6
    assert rel_err(got["rstd"], ref["rstd"]) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_matches_native_keras_layer_normalization(dtype):
    """Independent reference: Keras' LayerNormalization (native TF ops) in float64."""
    eps = 1e-3
    x, g, b, dy = inputs((6, 7, 96), dtype, seed=1)
    ref_layer = tf.keras.layers.LayerNormalization(epsilon=eps, dtype="float64")
    ref_layer.build((None, 7, 96))
    ref_layer.gamma.assign(tf.cast(g, tf.float64))
    ref_layer.beta.assign(tf.cast(b, tf.float64))
    x64 = tf.cast(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x64)
        ry = ref_layer(x64)
    rdx, rdg, rdb = tape.gradient(ry, [x64, ref_layer.gamma, ref_layer.beta],
                                  output_gradients=tf.cast(dy, tf.float64))
    got = ours(x, g, b, dy, eps)
    for k, r in dict(y=ry, dx=rdx, dgamma=rdg, dbeta=rdb).items():
        assert rel_err(got[k], r.numpy()) < REL[dtype], k


def test_numerical_gradient_float32():
    x, g, b, _ = inputs((3, 2, 5), tf.float32, seed=2, offset=0.5)

    def f(x, g, b):
        return lightseq_tf.layer_norm(x, g, b, epsilon=1e-3)

    theoretical, numerical = tf.test.compute_gradient(f, [x, g, b], delta=1e-2)
    for t, n in zip(theoretical, numerical):
        # float32 central differences with delta 1e-2: O(delta^2) truncation
        # plus O(u / delta) rounding, ~1e-4 on these magnitudes.
        np.testing.assert_allclose(t, n, atol=2e-3, rtol=2e-3)


def test_works_eagerly_in_tf_function_and_under_tape():
    x, g, b, dy = inputs((4, 32), tf.float32)

    @tf.function
    def step(x, g, b, dy):
        with tf.GradientTape() as tape:
            tape.watch([x, g, b])
            y = lightseq_tf.layer_norm(x, g, b)
        return (y,) + tuple(tape.gradient(y, [x, g, b], output_gradients=dy))

    with tf.GradientTape() as tape:
        tape.watch([x, g, b])
        y = lightseq_tf.layer_norm(x, g, b)
    eager = (y,) + tuple(tape.gradient(y, [x, g, b], output_gradients=dy))
    graph = step(x, g, b, dy)
    unknown = tf.function(step.python_function, input_signature=[
        tf.TensorSpec([None, None]), tf.TensorSpec([None]), tf.TensorSpec([None]),
        tf.TensorSpec([None, None])])(x, g, b, dy)
    for e, a, u in zip(eager, graph, unknown):
        np.testing.assert_array_equal(e.numpy(), a.numpy())
        np.testing.assert_array_equal(e.numpy(), u.numpy())


def test_shape_inference_in_graphs():
    @tf.function(input_signature=[tf.TensorSpec([None, 7, 64], tf.float16),
                                  tf.TensorSpec([64], tf.float16), tf.TensorSpec([64], tf.float16)])
    def f(x, g, b):
        y, mean, rstd = ops().lightseq_layer_norm(x, g, b)
        assert y.shape.as_list() == [None, 7, 64]
        assert mean.shape.as_list() == [None, 7] and mean.dtype == tf.float32
        return y

    f.get_concrete_function()


def test_deterministic_bitwise():
    x, g, b, dy = inputs((257, 512), tf.float32, seed=3)
    first = ours(x, g, b, dy, 1e-5)
    for _ in range(2):
        again = ours(x, g, b, dy, 1e-5)
        for k in first:
            np.testing.assert_array_equal(first[k].numpy(), again[k].numpy())


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_empty_batch(dtype):
    x = tf.zeros([0, 5, 8], dtype)
    g, b = tf.ones([8], dtype), tf.zeros([8], dtype)
    with tf.GradientTape() as tape:
        tape.watch([x, g, b])
        y = lightseq_tf.layer_norm(x, g, b)
    dx, dg, db = tape.gradient(y, [x, g, b], output_gradients=tf.zeros_like(y))
    assert y.shape == (0, 5, 8) and dx.shape == (0, 5, 8)
    assert np.all(tf.cast(dg, tf.float32).numpy() == 0) and np.all(tf.cast(db, tf.float32).numpy() == 0)


def test_stats_outputs_are_not_differentiable():
    x, g, b, _ = inputs((3, 8), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        _, mean, rstd = ops().lightseq_layer_norm(x, g, b)
        loss = tf.reduce_sum(mean) + tf.reduce_sum(rstd)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), np.zeros((3, 8), np.float32))


# --- bad input: InvalidArgument naming the argument and the limit -----------

def _bad(x, g, b, eps=1e-6):
    return lightseq_tf.layer_norm(x, g, b, epsilon=eps)


@pytest.mark.parametrize("case,match", [
    ("rank1", r"x must have rank >= 2"),
    ("hidden0", r"hidden size \(last dimension of x\) must be in \[1, 16384\], got 0"),
    ("hidden_too_big", r"must be in \[1, 16384\], got 16385"),
    ("gamma_shape", r"gamma must have shape \[8\]"),
    ("beta_shape", r"beta must have shape \[8\]"),
    ("eps_zero", r"epsilon must be a finite number > 0"),
    ("eps_nan", r"epsilon must be a finite number > 0"),
])
def test_bad_input_is_invalid_argument(case, match):
    x, g, b = tf.ones([2, 8]), tf.ones([8]), tf.zeros([8])
    args = {
        "rank1": (tf.ones([8]), g, b),
        "hidden0": (tf.ones([2, 0]), tf.ones([0]), tf.zeros([0])),
        "hidden_too_big": (tf.ones([1, 16385]), tf.ones([16385]), tf.zeros([16385])),
        "gamma_shape": (x, tf.ones([7]), b),
        "beta_shape": (x, g, tf.zeros([2, 8])),
        "eps_zero": (x, g, b, 0.0),
        "eps_nan": (x, g, b, float("nan")),
    }[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        _bad(*args)


def test_bad_input_with_unknown_static_shapes_fails_in_the_kernel():
    f = tf.function(_bad, input_signature=[tf.TensorSpec(None), tf.TensorSpec(None), tf.TensorSpec(None)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"gamma must have shape \[8\]"):
        f(tf.ones([2, 8]), tf.ones([3]), tf.zeros([8]))


def test_bad_input_with_static_shapes_fails_at_trace_time():
    f = tf.function(_bad)
    with pytest.raises(ValueError, match="Dimension"):
        f(tf.ones([2, 8]), tf.ones([3]), tf.zeros([8]))


def test_mixed_dtypes_are_rejected():
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError), match="half|float16|float32|float"):
        _bad(tf.ones([2, 8], tf.float16), tf.ones([8], tf.float32), tf.zeros([8], tf.float16))


def test_unsupported_dtype_is_rejected():
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, tf.errors.NotFoundError),
                       match="float64|double"):
        _bad(tf.ones([2, 8], tf.float64), tf.ones([8], tf.float64), tf.zeros([8], tf.float64))


@pytest.mark.parametrize("case,match", [
    ("dy_shape", r"dy must have the shape of x"),
    ("mean_shape", r"mean and rstd must have shape x.shape\[:-1\]"),
    ("gamma_shape", r"gamma must have shape \[8\]"),
])
def test_grad_op_bad_input(case, match):
    x, g = tf.ones([2, 8]), tf.ones([8])
    m = r = tf.ones([2])
    dy = tf.ones([2, 8])
    args = {"dy_shape": (tf.ones([2, 7]), x, m, r, g),
            "mean_shape": (dy, x, tf.ones([3]), r, g),
            "gamma_shape": (dy, x, m, r, tf.ones([9]))}[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        ops().lightseq_layer_norm_grad(*args)


def test_nan_input_propagates_to_its_row_only():
    x = tf.constant([[1.0, float("nan"), 2.0], [1.0, 2.0, 3.0]])
    y = lightseq_tf.layer_norm(x, tf.ones([3]), tf.zeros([3])).numpy()
    assert np.all(np.isnan(y[0])) and np.all(np.isfinite(y[1]))
