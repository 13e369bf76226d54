"""LightseqEmbedding (CPU twin) vs NeurST's embedding + sinusoid written in
native TF, and its table gradient vs TF autodiff of tf.gather."""
import math

import numpy as np
import pytest
import tensorflow as tf

import embedding_ref
import lightseq_tf
import philox_ref
from tolerances import REL, rel_err

# (output dtype, table dtype): float32 tables under mixed precision, or the same type.
DTYPES = [(tf.float32, tf.float32), (tf.float16, tf.float32), (tf.float16, tf.float16),
          (tf.bfloat16, tf.float32), (tf.bfloat16, tf.bfloat16)]


def neurst_signal(length, channels, time=0):
    """PositionEmbeddingWrapper.add_sinusoids_timing_signal of NeurST (float32)."""
    position = tf.cast(tf.range(time, time + length), tf.float32)
    num_timescales = channels // 2
    log_inc = math.log(1.0e4) / (tf.cast(num_timescales, tf.float32) - 1)
    inv = tf.exp(tf.cast(tf.range(num_timescales), tf.float32) * -log_inc)
    scaled = tf.expand_dims(position, 1) * tf.expand_dims(inv, 0)
    signal = tf.concat([tf.sin(scaled), tf.cos(scaled)], axis=1)
    return tf.pad(signal, [[0, 0], [0, channels % 2]])  # [length, channels]


def make(shape, vocab, hidden, table_dtype, seed=0, ids_dtype=tf.int32):
    ids = tf.random.stateless_uniform(shape, [seed, 1], 0, vocab, dtype=tf.int32)
    table = tf.cast(tf.random.stateless_normal([vocab, hidden], [seed, 2]), table_dtype)
    return tf.cast(ids, ids_dtype), table


def reference(ids, table, dy, scale, offset, padding_id, rate, seed):
    """float64 autodiff of scale * gather + signal, masked like the op."""
    hidden = table.shape[1]
    length = ids.shape[-1] if ids.shape.rank >= 2 else 1
    sig = tf.cast(neurst_signal(length, hidden, offset), tf.float64)
    if ids.shape.rank == 1:
        sig = sig[0]
    keep = philox_ref.keep_mask(seed, int(np.prod(ids.shape)) * hidden, rate)
    m = tf.constant(keep.reshape(ids.shape + [hidden]) * float(philox_ref.scale(rate)))
    valid = tf.cast(tf.not_equal(ids, padding_id), tf.float64)[..., None]
    t64 = tf.cast(table, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(t64)
        y = m * valid * (float(np.float32(scale)) * tf.gather(t64, ids) + sig)
    dtable = tf.convert_to_tensor(tape.gradient(y, t64, output_gradients=tf.cast(dy, tf.float64)))
    return y, dtable


def ours(ids, table, dy, dtype, **kw):
    with tf.GradientTape() as tape:
        tape.watch(table)
        y = lightseq_tf.embedding(ids, table, dtype=dtype, **kw)
    return y, tape.gradient(y, table, output_gradients=dy)


@pytest.mark.parametrize("dtype,table_dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape,hidden", [((3, 7), 8), ((2, 5), 13), ((2, 3, 4), 64),
                                          ((6,), 32), ((4, 33), 512)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.6])
def test_values_and_gradient_match_reference(shape, hidden, dtype, table_dtype, rate):
    vocab, offset, seed = 11, (5 if len(shape) == 1 else 0), 1234
    ids, table = make(shape, vocab, hidden, table_dtype)
    dy = tf.cast(tf.random.stateless_normal(list(shape) + [hidden], [3, 4]), dtype)
    y, dtable = ours(ids, table, dy, dtype, pos_offset=offset, rate=rate, seed=seed)
    ry, rdtable = reference(ids, table, dy, hidden ** 0.5, offset, -1, rate, seed)
    assert y.dtype == dtype and y.shape == ry.shape
    assert dtable.dtype == table_dtype and dtable.shape == table.shape
    assert rel_err(y, ry.numpy()) < REL[dtype]
    # Sums of up to ~shape/vocab tokens per row, in float32, rounded once to the table type.
    assert rel_err(dtable, rdtable.numpy()) < REL[table_dtype]


@pytest.mark.parametrize("ids_dtype", [tf.int32, tf.int64], ids=lambda d: d.name)
def test_padding_rows_are_zero_and_get_no_gradient(ids_dtype):
    ids, table = make((4, 9), 7, 16, tf.float32, ids_dtype=ids_dtype)
    ids = tf.tensor_scatter_nd_update(ids, [[0, 8], [3, 0]], tf.constant([0, 0], ids_dtype))
    dy = tf.random.stateless_normal([4, 9, 16], [5, 6])
    y, dtable = ours(ids, table, dy, None, padding_id=0, scale=2.0, rate=0.2, seed=9)
    ry, rdtable = reference(ids, table, dy, 2.0, 0, 0, 0.2, 9)
    assert np.all(y.numpy()[ids.numpy() == 0] == 0)
    assert np.all(dtable.numpy()[0] == 0)
    assert rel_err(y, ry.numpy()) < REL[tf.float32]
    assert rel_err(dtable, rdtable.numpy()) < REL[tf.float32]


def test_neurst_convention_embeds_padding_like_any_token():
    ids, table = make((2, 6), 5, 8, tf.float32)
    ids = tf.concat([ids[:, :4], tf.zeros([2, 2], tf.int32)], 1)  # id 0 = NeurST's pad
    y = lightseq_tf.embedding(ids, table)  # padding_id=-1
    want = tf.gather(table, ids) * 8 ** 0.5 + neurst_signal(6, 8)
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=2e-6, atol=2e-6)


def test_no_positions_is_a_scaled_lookup():
    ids, table = make((3, 5), 10, 24, tf.float32)
    y = lightseq_tf.embedding(ids, table, scale=1.0, positions=False)
    np.testing.assert_array_equal(y.numpy(), tf.gather(table, ids).numpy())


def test_incremental_steps_equal_the_full_sequence():
    """NeurST's decoder embeds one position per step: rank-1 ids + time."""
    ids, table = make((3, 10), 20, 32, tf.float32)
    full = lightseq_tf.embedding(ids, table)

    @tf.function
    def step(tok, t):
        return lightseq_tf.embedding(tok, table, pos_offset=t)

    steps = tf.stack([step(ids[:, t], tf.constant(t)) for t in range(10)], axis=1)
    np.testing.assert_array_equal(steps.numpy(), full.numpy())


def test_gradient_is_deterministic_with_repeated_ids():
    ids = tf.constant(np.random.RandomState(0).randint(0, 4, size=(64, 50)), tf.int32)
    table = tf.random.stateless_normal([4, 96], [1, 1])
    dy = tf.random.stateless_normal([64, 50, 96], [2, 2])
    grads = [ours(ids, table, dy, None, rate=0.3, seed=5)[1].numpy() for _ in range(3)]
    for g in grads[1:]:
        np.testing.assert_array_equal(g, grads[0])
    _, ref = reference(ids, table, dy, 96 ** 0.5, 0, -1, 0.3, 5)
    assert rel_err(grads[0], ref.numpy()) < REL[tf.float32]


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_gradient_order_bit_for_bit(rate):
    """The CPU twin sums in the GPU kernel's order: equal to the float32 replay
    (tests/gpu checks the GPU against the same replay)."""
    # id 0 spans several 16-position chunks of the sorted ids; ids 1-4 start mid-chunk.
    ids = tf.constant(np.random.RandomState(3).choice(5, (2, 150), p=[.7, .1, .1, .05, .05]),
                      tf.int32)
    table = tf.zeros([5, 16])
    dy = tf.random.stateless_normal([2, 150, 16], [4, 4])
    _, got = ours(ids, table, dy, None, scale=1.5, rate=rate, seed=8)
    want = embedding_ref.grad_in_kernel_order(ids.numpy(), dy.numpy(), 5, 1.5, rate, 8)
    np.testing.assert_array_equal(got.numpy(), want)


def test_keep_rate_and_seeds():
    ids = tf.zeros([64, 64], tf.int32)
    table = tf.ones([1, 64])
    a = lightseq_tf.embedding(ids, table, scale=1.0, positions=False, rate=0.25, seed=1).numpy()
    b = lightseq_tf.embedding(ids, table, scale=1.0, positions=False, rate=0.25, seed=2).numpy()
    n = a.size
    kept = np.count_nonzero(a) / n
    assert abs(kept - 0.75) < 5 * math.sqrt(0.75 * 0.25 / n)
    assert np.any((a != 0) != (b != 0))
    np.testing.assert_allclose(a[a != 0], 1 / 0.75, rtol=1e-6)


def test_empty_ids():
    table = tf.ones([5, 8])
    ids = tf.zeros([0, 3], tf.int32)
    y, dtable = ours(ids, table, tf.zeros([0, 3, 8]), None)
    assert y.shape == (0, 3, 8)
    np.testing.assert_array_equal(dtable.numpy(), np.zeros([5, 8], np.float32))


@pytest.mark.parametrize("bad", [-1, 7, 1 << 40])
def test_ids_out_of_range_are_invalid_argument(bad):
    table = tf.ones([7, 8])
    ids = tf.constant([[1, 2], [3, bad]], tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"ids \(flat index 3\).*vocab = 7"):
        lightseq_tf.embedding(ids, table)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ids"):
        lightseq_tf.ops._library.ops().lightseq_embedding_grad(
            tf.ones([2, 2, 8]), ids, 7, tf.constant(0, tf.int64), Ttable=tf.float32)


def test_bad_arguments():
    table = tf.ones([7, 8])
    ids = tf.constant([[1, 2, 3]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_positions = 4"):
        lightseq_tf.embedding(ids, table, pos_offset=2, max_positions=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pos_offset must be >= 0"):
        lightseq_tf.embedding(ids, table, pos_offset=-1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="padding_id .7. must be < vocab = 7"):
        lightseq_tf.embedding(ids, table, padding_id=7)
    with pytest.raises(tf.errors.InvalidArgumentError, match="rate must be in"):
        lightseq_tf.embedding(ids, table, rate=1.0)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank"):
        lightseq_tf.embedding(ids, tf.ones([7, 8, 1]))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank"):
        lightseq_tf.embedding(tf.constant(3), table)
    with pytest.raises(ValueError, match="table must be float32 or the output dtype"):
        lightseq_tf.embedding(ids, tf.ones([7, 8], tf.float16), dtype=tf.bfloat16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="dy must have shape"):
        lightseq_tf.ops._library.ops().lightseq_embedding_grad(
            tf.ones([1, 2, 8]), ids, 7, tf.constant(0, tf.int64), Ttable=tf.float32)
