"""LightseqDropout (CPU twin): masks equal the independent numpy Philox
reference bit for bit, statistics, gradient, bad input."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
import philox_ref

DTYPES = [tf.float32, tf.float16, tf.bfloat16]


def expected(x, seed, rate):
    """Exact expected output: kept elements are x * scale rounded once."""
    xf = tf.cast(x, tf.float32).numpy().reshape(-1)
    keep = philox_ref.keep_mask(seed, xf.size, rate)
    y = np.where(keep, xf * philox_ref.scale(rate), np.float32(0)).astype(np.float32)
    return tf.cast(y.reshape(x.shape), x.dtype).numpy(), keep


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(1,), (3,), (5, 7), (4, 1024), (2, 3, 333)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_matches_numpy_philox_bitwise(shape, dtype, rate):
    seed = 20261123
    x = tf.cast(tf.random.stateless_uniform(shape, [1, 2], 0.5, 2.0), dtype)
    y = lightseq_tf.dropout(x, rate, seed)
    want, _ = expected(x, seed, rate)
    np.testing.assert_array_equal(tf.cast(y, tf.float32).numpy(),
                                  tf.cast(want, tf.float32).numpy())


def test_mask_depends_on_flat_index_only():
    x = tf.random.stateless_normal([6, 40], [3, 4])
    a = lightseq_tf.dropout(x, 0.3, 7)
    b = lightseq_tf.dropout(tf.reshape(x, [240]), 0.3, 7)
    c = lightseq_tf.dropout(tf.reshape(x, [2, 3, 5, 8]), 0.3, 7)
    np.testing.assert_array_equal(a.numpy().reshape(-1), b.numpy())
    np.testing.assert_array_equal(a.numpy().reshape(-1), c.numpy().reshape(-1))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_keep_rate_within_binomial_bounds(rate):
    n = 1 << 20
    y = lightseq_tf.dropout(tf.ones([n]), rate, 99).numpy()
    kept = np.count_nonzero(y) / n
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept - (1 - rate)) < 5 * sigma
    assert np.all((y == 0) | (y == np.float32(1 / (1 - rate))))


def test_seeds_give_different_masks_and_same_seed_the_same():
    x = tf.ones([4096])
    a, b, c = (lightseq_tf.dropout(x, 0.5, s).numpy() for s in (1, 2, 1))
    np.testing.assert_array_equal(a, c)
    assert np.mean(a != b) > 0.3


def test_full_64_bit_seeds():
    for seed in (2**40 + 5, -3, 2**63 - 1):
        y = lightseq_tf.dropout(tf.ones([64]), 0.5, tf.constant(seed, tf.int64)).numpy()
        keep = philox_ref.keep_mask(seed & (2**64 - 1), 64, 0.5)
        np.testing.assert_array_equal(y != 0, keep)


def test_graph_and_eager_agree_and_seed_is_a_tensor():
    x = tf.random.stateless_normal([33, 17], [5, 6])
    f = tf.function(lambda x, s: lightseq_tf.dropout(x, 0.25, s))
    for s in (11, 12):
        np.testing.assert_array_equal(f(x, tf.constant(s, tf.int64)).numpy(),
                                      lightseq_tf.dropout(x, 0.25, s).numpy())


def test_gradient_applies_the_same_mask():
    x = tf.random.stateless_normal([8, 50], [7, 8])
    dy = tf.random.stateless_normal([8, 50], [9, 10])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = lightseq_tf.dropout(x, 0.4, 5)
    dx = tape.gradient(y, x, output_gradients=dy)
    want, keep = expected(dy, 5, 0.4)
    np.testing.assert_array_equal(dx.numpy(), want)


def test_empty_and_scalar():
    assert lightseq_tf.dropout(tf.zeros([0, 3]), 0.5, 1).shape == (0, 3)
    y = lightseq_tf.dropout(tf.constant(2.0), 0.5, 1).numpy()
    assert y in (0.0, 4.0)


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan")])
def test_rate_outside_range_is_invalid_argument(rate):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"rate must be in \[0, 1\)"):
        lightseq_tf.dropout(tf.ones([4]), rate, 1)


def test_seed_must_be_a_scalar():
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="seed|rank"):
        lightseq_tf.dropout(tf.ones([4]), 0.5, tf.constant([1, 2], tf.int64))
