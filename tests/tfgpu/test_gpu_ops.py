"""The single fused ops placed on the device under test by TensorFlow, forward
and gradient, float32 / float16 / bfloat16, against their CPU twins on the
same inputs and seeds and against tests/cpu's independent references at
tests/cpu's bounds (tolerances.py): dropout masks bit-identical, exact ops
(dropout, head split/merge, the embedding's gradient order) bit for bit."""
import target  # noqa: F401  (first: skips this module where TensorFlow lists no GPU)

import numpy as np
import pytest
import tensorflow as tf

import embedding_ref
import lightseq_tf
import philox_ref
import test_bias_act_dropout as bad_t
import test_bias_dropout_residual as bdr_t
import test_cross_entropy as ce_t
import test_dropout as do_t
import test_embedding as emb_t
import test_heads as heads_t
import test_layer_norm as ln_t
import test_softmax as sm_t
from target import (CPU, DEVICE, ON_GPU, assert_bits_equal, assert_placed, assert_same_zeros,
                    both, f32, on_target, op_types_without_kernel, our_op_types)
from tolerances import REL, rel_err

DTYPES = [tf.float32, tf.float16, tf.bfloat16]
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)


def close(got, cpu, ref, dtype, what):
    """got (target) and the CPU twin each within the CPU tests' bound of the
    float64 reference, and of each other."""
    assert_placed(got)
    assert rel_err(got, ref) < REL[dtype], (what, rel_err(got, ref))
    assert rel_err(got, f32(cpu).astype(np.float64)) < REL[dtype], (what, rel_err(got, f32(cpu)))


def reference(fn, *args):
    """The float64 references of tests/cpu, computed on the CPU."""
    with tf.device(CPU):
        out = fn(*args)
    return [np.asarray(r) for r in out] if isinstance(out, (tuple, list)) else {
        k: np.asarray(v) for k, v in out.items()}


def test_every_op_has_a_kernel_on_the_device():
    """A CPU-only build loaded into TF's GPU build would silently run
    everything on the CPU; with soft placement off it fails loudly, but say
    which ops first."""
    assert len(our_op_types()) >= 20
    assert op_types_without_kernel() == []


def test_strict_placement_rejects_an_op_without_a_kernel_there():
    """on_target() really turns soft placement off (else the placement checks
    below could pass by accident): an op TF has no kernel for on that device
    fails. String ops have CPU kernels only."""
    if not ON_GPU:
        pytest.skip("every op has a CPU kernel: nothing to reject on %s" % DEVICE)
    with on_target(), pytest.raises((tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
                                     tf.errors.InternalError)):
        tf.strings.length(tf.constant(["abc"]))


@dtypes
@pytest.mark.parametrize("shape", [(3, 3), (4, 1023), (2, 4097), (2, 3, 16), (1, 16384)], ids=str)
def test_layer_norm(shape, dtype):
    x, g, b, dy = ln_t.inputs(shape, dtype)
    got, cpu = both(ln_t.ours, x, g, b, dy, 1e-5)
    ref = reference(ln_t.numpy_reference, x, g, b, dy, 1e-5)
    for k in ("y", "dx", "dgamma", "dbeta"):
        close(got[k], cpu[k], ref[k], dtype, k)
    assert rel_err(got["mean"], ref["mean"]) < 1e-6 and rel_err(got["rstd"], ref["rstd"]) < 1e-5


@dtypes
@pytest.mark.parametrize("shape", [(3,), (4, 1024), (2, 3, 333)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.9])
def test_dropout_bitwise_and_gradient(shape, dtype, rate):
    """Exact: kept elements are x * scale rounded once (tests/cpu), on both."""
    seed = 20261123
    x = tf.cast(tf.random.stateless_uniform(shape, [1, 2], 0.5, 2.0), dtype)
    dy = tf.cast(tf.random.stateless_uniform(shape, [3, 4], 0.5, 2.0), dtype)

    def run(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = lightseq_tf.dropout(x, rate, seed)
        return y, tape.gradient(y, x, output_gradients=dy)

    (y, dx), (cy, cdx) = both(run, x, dy)
    assert_placed(y, dx)
    want, _ = do_t.expected(x, seed, rate)
    want_dx, _ = do_t.expected(dy, seed, rate)
    assert_bits_equal(y, want, "y")
    assert_bits_equal(y, cy, "y vs CPU")
    assert_bits_equal(dx, want_dx, "dx")
    assert_bits_equal(dx, cdx, "dx vs CPU")


def test_dropout_full_64_bit_seeds_and_graph_mode():
    for seed in (2**40 + 5, -3, 2**63 - 1):
        fn = tf.function(lambda s: lightseq_tf.dropout(tf.ones([4096]), 0.5, s))
        with on_target():
            y = fn(tf.constant(seed, tf.int64))
        assert_placed(y)
        keep = philox_ref.keep_mask(seed & (2**64 - 1), 4096, 0.5)
        np.testing.assert_array_equal(y.numpy() != 0, keep)


@dtypes
@pytest.mark.parametrize("shape", [(3, 1), (4, 1023), (2, 3, 512)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.6])
def test_bias_dropout_residual(shape, dtype, rate):
    args = bdr_t.inputs(shape, dtype)
    got, cpu = both(bdr_t.ours, *args, 42, rate)
    ref = reference(bdr_t.native, *args, 42, rate)
    for name, g, c, r in zip(("y", "dx", "dbias", "dresidual"), got, cpu, ref):
        close(g, c, r, dtype, name)
    # The mask: with a zero residual exactly the dropped elements are zero.
    x, bias, residual, dy = args
    zero = tf.zeros_like(residual)
    y0, c0 = both(lightseq_tf.bias_dropout_residual, x, bias, zero, rate, 42)
    assert_same_zeros(y0, c0, "mask")
    keep = philox_ref.keep_mask(42, int(np.prod(shape)), rate).reshape(shape)
    np.testing.assert_array_equal(f32(y0) != 0, keep & (f32(x + bias) != 0))


@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_tanh"])
@dtypes
@pytest.mark.parametrize("shape", [(3, 1), (4, 1023), (2, 3, 2048)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.2])
def test_bias_act_dropout(shape, dtype, act, rate):
    x, bias, dy = bad_t.inputs(shape, dtype)
    got, cpu = both(bad_t.ours, x, bias, dy, 5, rate, act)
    ref = reference(bad_t.native, x, bias, dy, 5, rate, act)
    for name, g, c, r in zip(("y", "dx", "dbias"), got, cpu, ref):
        close(g, c, r, dtype, name)
    if act == "relu" or dtype == tf.float32:
        # (GELU's far negative tail rounds to 16-bit zero or a subnormal
        # depending on the last bit: zeros say nothing about the mask there.)
        assert_same_zeros(got[0], cpu[0], "mask")


@dtypes
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (2, 2, 16, 33), (1, 1, 1, 300), (2, 4, 64, 64)],
                         ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_attn_softmax(shape, dtype, causal, rate):
    b, h, lq, lk = shape
    scores = tf.cast(tf.random.stateless_normal(shape, [1, 2]) * 2, dtype)
    dy = tf.cast(tf.random.stateless_normal(shape, [3, 4]), dtype)
    lengths = np.random.default_rng(0).integers(1, lk + 1, b).astype(np.int32)
    lengths[0] = 0  # a fully masked batch row gives zeros, not NaN

    def run(scores, dy):
        with tf.GradientTape() as tape:
            tape.watch(scores)
            y = lightseq_tf.attn_softmax(scores, lengths, 0.25, causal, rate, 9)
        return y, tape.gradient(y, scores, output_gradients=dy)

    got, cpu = both(run, scores, dy)
    ref = reference(sm_t.native, scores, lengths, 0.25, causal, rate, 9, dy)
    for name, g, c, r in zip(("y", "dscores"), got, cpu, ref):
        assert np.all(np.isfinite(f32(g))), name
        close(g, c, r, dtype, name)
    assert_same_zeros(got[0], cpu[0], "mask")


@dtypes
@pytest.mark.parametrize("b,l,heads,splits,d", [(2, 5, 4, 3, 8), (3, 7, 2, 1, 5), (2, 9, 8, 3, 64)])
def test_split_and_merge_heads_bitwise(b, l, heads, splits, d, dtype):
    """Pure data movement (+ one bias add, rounded once): bit for bit."""
    x = tf.cast(tf.random.stateless_normal([b, l, splits * heads * d], [1, 2]), dtype)
    bias = tf.cast(tf.random.stateless_normal([splits * heads * d], [3, 4]), dtype)
    dy = tf.cast(tf.random.stateless_normal([splits, b, heads, l, d], [5, 6]), dtype)

    def run(x, bias, dy):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([x, bias])
            out = lightseq_tf.split_heads(x, bias, heads, splits)
            merged = lightseq_tf.merge_heads(out)
        dx, dbias = tape.gradient(out, [x, bias], output_gradients=dy)
        return out, merged, dx, dbias

    got, cpu = both(run, x, bias, dy)
    assert_placed(got)
    with tf.device(CPU):
        want = heads_t.native_split(x, bias, heads, splits)
    assert_bits_equal(got[0], want, "split")
    assert_bits_equal(got[1], x + bias, "merge")
    for name, g, c in zip(("split", "merge", "dx"), got[:3], cpu[:3]):
        assert_bits_equal(g, c, name)
    # dbias is a column sum (TF's reduce_sum on each device): sums reassociate.
    assert rel_err(got[3], f32(cpu[3]).astype(np.float64)) < REL[dtype]


@dtypes
@pytest.mark.parametrize("shape,vocab", [((5,), 2), ((3, 7), 33), ((64,), 1000), ((2, 3), 32000)],
                         ids=str)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy(shape, vocab, dtype, eps):
    pad = 0
    logits, targets = ce_t.inputs(shape, vocab, dtype, pad=pad)
    gl = tf.random.stateless_normal(shape, [3, 4])
    gn = tf.random.stateless_normal(shape, [5, 6])

    def run(logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss, nll, sums = lightseq_tf.cross_entropy(logits, targets, eps, pad)
            obj = tf.reduce_sum(loss * gl) + tf.reduce_sum(nll * gn) + 0.5 * sums[0] - 2 * sums[1]
        return loss, nll, sums, tape.gradient(obj, logits)

    got, cpu = both(run, logits)
    with tf.device(CPU):
        rl, rn, q, p, keep = ce_t.numpy_reference(logits, targets, eps, pad)
    a = (gl.numpy() + 0.5)[..., None] * keep[..., None]
    b = (gn.numpy() - 2.0)[..., None] * keep[..., None]
    onehot = (q == q.max(-1, keepdims=True)).astype(np.float64) if eps > 0 else q
    rd = a * (p - q) + b * (p - onehot)
    assert_placed(got)
    # loss, nll and sums are float32 whatever the logits' type (tests/cpu: 1e-5).
    for name, g, c, r in (("loss", got[0], cpu[0], rl), ("nll", got[1], cpu[1], rn)):
        assert rel_err(g, r) < 1e-5 and rel_err(g, f32(c)) < 1e-5, name
    np.testing.assert_allclose(got[2].numpy(), [rl.sum(), rn.sum(), keep.sum()], rtol=1e-5)
    close(got[3], cpu[3], rd, dtype, "dlogits")


def test_cross_entropy_out_of_range_target_is_nan_on_the_gpu():
    """README: on the GPU an out-of-range target cannot be reported without a
    host sync; the kernel writes NaN for that token instead (loss, sums,
    gradient row), never reading outside the logits. The CPU rejects it."""
    logits = tf.random.stateless_normal([3, 7], [1, 1])
    targets = tf.constant([1, 9, 2])
    if not ON_GPU:
        with on_target(), pytest.raises(tf.errors.InvalidArgumentError, match=r"targets\[1\] = 9"):
            lightseq_tf.cross_entropy(logits, targets, 0.1)
        return
    with on_target():
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss, nll, sums = lightseq_tf.cross_entropy(logits, targets, 0.1)
        d = tape.gradient(loss, logits).numpy()
    loss = loss.numpy()
    assert np.isnan(loss[1]) and np.all(np.isfinite(loss[[0, 2]])) and np.isnan(sums.numpy()[0])
    assert np.all(np.isnan(d[1])) and np.all(np.isfinite(d[[0, 2]]))


@pytest.mark.parametrize("dtype,table_dtype", [(tf.float32, tf.float32), (tf.float16, tf.float32),
                                               (tf.float16, tf.float16), (tf.bfloat16, tf.float32),
                                               (tf.bfloat16, tf.bfloat16)], ids=str)
@pytest.mark.parametrize("shape,hidden", [((3, 7), 8), ((2, 5), 13), ((6,), 32), ((4, 33), 512)],
                         ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.6])
def test_embedding(shape, hidden, dtype, table_dtype, rate):
    vocab, offset, seed = 11, (5 if len(shape) == 1 else 0), 1234
    ids, table = emb_t.make(shape, vocab, hidden, table_dtype)
    dy = tf.cast(tf.random.stateless_normal(list(shape) + [hidden], [3, 4]), dtype)
    got, cpu = both(emb_t.ours, ids, table, dy, dtype, pos_offset=offset, rate=rate, seed=seed)
    ry, rdtable = reference(emb_t.reference, ids, table, dy, hidden ** 0.5, offset, -1, rate, seed)
    assert got[0].dtype == dtype and got[1].dtype == table_dtype
    close(got[0], cpu[0], ry, dtype, "y")
    close(got[1], cpu[1], rdtable, table_dtype, "dtable")
    assert_same_zeros(got[0], cpu[0], "mask")


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_embedding_gradient_order_bit_for_bit(rate):
    """The table gradient sums in one fixed order on both devices (sorted
    ids, 16-position pieces; tests/common/embedding_ref.py), with no atomics:
    equal to the float32 replay and to the CPU twin, bit for bit."""
    ids = tf.constant(np.random.RandomState(3).choice(5, (2, 150), p=[.7, .1, .1, .05, .05]),
                      tf.int32)
    table = tf.zeros([5, 16])
    dy = tf.random.stateless_normal([2, 150, 16], [4, 4])
    got, cpu = both(emb_t.ours, ids, table, dy, None, scale=1.5, rate=rate, seed=8)
    assert_placed(got)
    want = embedding_ref.grad_in_kernel_order(ids.numpy(), dy.numpy(), 5, 1.5, rate, 8)
    assert_bits_equal(got[1], want, "dtable vs replay")
    assert_bits_equal(got[1], cpu[1], "dtable vs CPU")


def test_embedding_padding_rows_and_decoding_steps():
    ids, table = emb_t.make((4, 9), 7, 16, tf.float32)
    ids = tf.tensor_scatter_nd_update(ids, [[0, 8], [3, 0]], tf.constant([0, 0]))
    dy = tf.random.stateless_normal([4, 9, 16], [5, 6])
    got, cpu = both(emb_t.ours, ids, table, dy, None, padding_id=0, scale=2.0, rate=0.2, seed=9)
    assert np.all(got[0].numpy()[ids.numpy() == 0] == 0) and np.all(got[1].numpy()[0] == 0)
    assert rel_err(got[0], cpu[0].numpy()) < REL[tf.float32]

    # rank-1 ids: one decoding step at pos_offset, in a graph
    step = tf.function(lambda tok, t: lightseq_tf.embedding(tok, table, pos_offset=t))
    with on_target():
        steps = tf.stack([step(ids[:, t], tf.constant(t)) for t in range(9)], axis=1)
        full = lightseq_tf.embedding(ids, table)
    assert_placed(steps, full)
    assert_bits_equal(steps, full, "steps vs full")


def test_ops_run_in_graph_mode_with_unknown_shapes():
    """The same kernels through tf.function with unknown static shapes."""
    x, g, b, dy = ln_t.inputs((6, 40), tf.float16)
    spec = [tf.TensorSpec([None, None], tf.float16), tf.TensorSpec([None], tf.float16),
            tf.TensorSpec([None], tf.float16), tf.TensorSpec([None, None], tf.float16)]

    def run(*args):  # one tf.function per side: each traces inside its device scope
        return tf.function(lambda x, g, b, dy: ln_t.ours(x, g, b, dy, 1e-5),
                           input_signature=spec)(*args)

    got, cpu = both(run, x, g, b, dy)
    for k in ("y", "dx", "dgamma", "dbeta"):
        assert_placed(got[k])
        assert rel_err(got[k], f32(cpu[k]).astype(np.float64)) < REL[tf.float16], k
