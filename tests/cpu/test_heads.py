"""LightseqSplitHeads / LightseqMergeHeads (CPU twin) vs tf.reshape/transpose."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf

DTYPES = [tf.float32, tf.float16, tf.bfloat16]


def native_split(x, bias, heads, splits):
    b, l, w = x.shape
    d = w // (heads * splits)
    y = tf.reshape(x + bias, [b, l, splits, heads, d])
    return tf.transpose(y, [2, 0, 3, 1, 4])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("b,l,heads,splits,d", [(2, 5, 4, 3, 8), (3, 7, 2, 1, 5), (1, 1, 1, 2, 1),
                                                (2, 9, 8, 3, 64)])
def test_split_merge_and_gradients_match_native(b, l, heads, splits, d, dtype):
    x = tf.cast(tf.random.stateless_normal([b, l, splits * heads * d], [1, 2]), dtype)
    bias = tf.cast(tf.random.stateless_normal([splits * heads * d], [3, 4]), dtype)
    dy = tf.cast(tf.random.stateless_normal([splits, b, heads, l, d], [5, 6]), dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, bias])
        ours = lightseq_tf.split_heads(x, bias, heads, splits)
        ref = native_split(x, bias, heads, splits)
    np.testing.assert_array_equal(tf.cast(ours, tf.float32).numpy(), tf.cast(ref, tf.float32).numpy())
    for g, r in zip(tape.gradient(ours, [x, bias], output_gradients=dy),
                    tape.gradient(ref, [x, bias], output_gradients=dy)):
        np.testing.assert_allclose(tf.cast(g, tf.float32).numpy(), tf.cast(r, tf.float32).numpy(),
                                   rtol=1e-2 if dtype != tf.float32 else 1e-6, atol=1e-2 if dtype != tf.float32 else 1e-6)
    merged = lightseq_tf.merge_heads(ours)
    np.testing.assert_array_equal(tf.cast(merged, tf.float32).numpy(),
                                  tf.cast(x + bias, tf.float32).numpy())
    with tf.GradientTape() as tape:
        tape.watch(ours)
        m = lightseq_tf.merge_heads(ours)
    dm = tape.gradient(m, ours, output_gradients=tf.cast(x, dtype))
    np.testing.assert_array_equal(tf.cast(dm, tf.float32).numpy(),
                                  tf.cast(native_split(x, tf.zeros_like(bias), heads, splits),
                                          tf.float32).numpy())


def test_attention_output_merge_from_rank4():
    o = tf.random.stateless_normal([2, 4, 3, 8], [7, 8])  # [B, heads, L, d]
    want = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [2, 3, 32])
    np.testing.assert_array_equal(lightseq_tf.merge_heads(o).numpy(), want.numpy())


@pytest.mark.parametrize("case,match", [
    ("divisible", r"must be divisible by splits \* heads = 6"),
    ("bias", r"bias must have shape \[12\]"),
    ("rank", r"x must have rank 3"),
])
def test_bad_input_is_invalid_argument(case, match):
    from lightseq_tf.ops._library import ops
    args = {"divisible": (tf.zeros([1, 2, 10]), tf.zeros([10]), 2, 3),
            "bias": (tf.zeros([1, 2, 12]), tf.zeros([5]), 2, 3),
            "rank": (tf.zeros([2, 12]), tf.zeros([12]), 2, 3)}[case]
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
        ops().lightseq_split_heads(args[0], args[1], heads=args[2], splits=args[3])
