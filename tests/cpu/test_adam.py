"""LightseqMultiTensorAdam (CPU twin) vs a numpy float32 Adam step with the
same order of operations (bit for bit), and vs Keras' own Adam / AdamW."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from adam_ref import F32, differing_bits, numpy_adam
from tolerances import rel_err

# Sizes around the vector width and the CPU twin's 16384-element chunks.
SHAPES = [(1,), (7,), (8,), (9,), (33,), (3, 17), (1000,), (16384 + 5,), (2, 16384), (64, 129)]
GRAD_DTYPES = [tf.float32, tf.float16, tf.bfloat16]


def make_state(shapes, seed):
    rng = np.random.default_rng(seed)
    p = [rng.standard_normal(s).astype(F32) for s in shapes]
    m = [(0.1 * rng.standard_normal(s)).astype(F32) for s in shapes]
    v = [(0.01 * rng.random(s)).astype(F32) for s in shapes]
    return p, m, v


def make_grads(shapes, dtype, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [tf.cast(rng.standard_normal(s).astype(F32) * F32(scale), dtype) for s in shapes]


def tf_vars(arrays):
    return [tf.Variable(a) for a in arrays]


def assert_bits_equal(tf_list, np_list, what):
    for i, (a, b) in enumerate(zip(tf_list, np_list)):
        a = np.asarray(a.numpy() if hasattr(a, "numpy") else a, F32)
        bad = differing_bits(a, b)
        assert bad.size == 0, f"{what}[{i}]: {bad.size} elements differ, first at {bad[0]}: " \
                              f"{a.flat[bad[0]]!r} vs {b.flat[bad[0]]!r}"


HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.98, epsilon=1e-8)


@pytest.mark.parametrize("dtype", GRAD_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
@pytest.mark.parametrize("wd", [0.0, 0.01])
@pytest.mark.parametrize("grad_scale", [1.0, 1024.0, 3.0])
def test_bit_exact_vs_numpy_over_steps(dtype, adamw, wd, grad_scale):
    p0, m0, v0 = make_state(SHAPES, 0)
    p, m, v = tf_vars(p0), tf_vars(m0), tf_vars(v0)
    rp, rm, rv = list(p0), list(m0), list(v0)
    for step in (1, 2, 3, 10):
        lr = 1e-3 * step ** 0.5  # lr changes every step, as under a schedule
        gs = make_grads(SHAPES, dtype, 100 + step, scale=grad_scale)
        lightseq_tf.multi_tensor_adam(p, m, v, gs, lr, HYPER["beta1"], HYPER["beta2"],
                                      HYPER["epsilon"], wd, step, adamw=adamw,
                                      grad_scale=grad_scale)
        for i, g in enumerate(gs):
            g32 = tf.cast(g, tf.float32).numpy()
            rp[i], rm[i], rv[i] = numpy_adam(rp[i], rm[i], rv[i], g32, lr, HYPER["beta1"],
                                             HYPER["beta2"], HYPER["epsilon"], wd, step, adamw,
                                             grad_scale)
        assert_bits_equal(p, rp, "var")
        assert_bits_equal(m, rm, "m")
        assert_bits_equal(v, rv, "v")
    # the step really moved the weights (a no-op kernel would fail above, too)
    assert rel_err(p[6].numpy(), p0[6]) > 1e-4


def test_weight_decay_modes_differ_and_decay_applies():
    """Adam's L2 term enters m and v; AdamW's decay does not: with a zero
    gradient AdamW shrinks p by exactly lr*wd*p and leaves m, v moment-only."""
    shapes = [(5,), (4, 3)]
    p0, m0, v0 = make_state(shapes, 1)
    zeros = [tf.zeros(s) for s in shapes]
    p, m, v = tf_vars(p0), tf_vars(m0), tf_vars(v0)
    lightseq_tf.multi_tensor_adam(p, m, v, zeros, 0.1, 0.9, 0.999, 1e-8, 0.5, 1, adamw=True)
    for i in range(2):
        rp, rm, rv = numpy_adam(p0[i], m0[i], v0[i], np.zeros(shapes[i], F32), 0.1, 0.9, 0.999,
                                1e-8, 0.5, 1, True, 1.0)
        assert_bits_equal([p[i], m[i], v[i]], [rp, rm, rv], "adamw")
        np.testing.assert_array_equal(m[i].numpy(), F32(0.9) * m0[i])  # no decay term in m
    p, m, v = tf_vars(p0), tf_vars(m0), tf_vars(v0)
    lightseq_tf.multi_tensor_adam(p, m, v, zeros, 0.1, 0.9, 0.999, 1e-8, 0.5, 1, adamw=False)
    expect_m = F32(0.9) * m0[0] + (F32(1) - F32(0.9)) * (F32(0.5) * p0[0])  # L2 term in m
    np.testing.assert_array_equal(m[0].numpy(), expect_m)


def test_denormal_moments_are_kept_like_numpy():
    """g^2 of a 1e-20 grad is denormal; TF's CPU threads would flush it."""
    zeros = np.zeros(6, F32)
    p, m, v = tf_vars([zeros]), tf_vars([zeros]), tf_vars([zeros])
    g = np.array([1e-20, -1e-19, 1e-21, 3e-23, 1.0, 0.0], F32)
    lightseq_tf.multi_tensor_adam(p, m, v, [tf.constant(g)], 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    ref = numpy_adam(zeros, zeros, zeros, g, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, False, 1.0)
    assert 0 < ref[2][0] < np.finfo(F32).tiny  # the reference does hold a denormal
    assert_bits_equal([p[0], m[0], v[0]], ref, "denormal")


def test_found_inf_skips_everything_bit_identical():
    p0, m0, v0 = make_state(SHAPES, 2)
    p, m, v = tf_vars(p0), tf_vars(m0), tf_vars(v0)
    gs = make_grads(SHAPES, tf.float16, 3)
    gs[3] = tf.fill(SHAPES[3], tf.constant(float("inf"), tf.float16))
    for flag in (1.0, float("nan"), -2.0):
        lightseq_tf.multi_tensor_adam(p, m, v, gs, 1e-2, 0.9, 0.999, 1e-8, 0.1, 5, adamw=True,
                                      grad_scale=8.0, found_inf=tf.constant(flag))
        assert_bits_equal(p, p0, "var")
        assert_bits_equal(m, m0, "m")
        assert_bits_equal(v, v0, "v")
    gs[3] = tf.zeros(SHAPES[3], tf.float16)
    lightseq_tf.multi_tensor_adam(p, m, v, gs, 1e-2, 0.9, 0.999, 1e-8, 0.1, 5, adamw=True,
                                  grad_scale=8.0, found_inf=tf.constant(0.0))
    assert rel_err(p[4].numpy(), p0[4]) > 1e-4  # a zero flag does update


def test_many_tensors_under_tf_function_with_variable_step():
    rng = np.random.default_rng(4)
    shapes = [(int(n),) for n in rng.integers(1, 300, size=200)] + [(0,), (17, 1)]
    p0, m0, v0 = make_state(shapes, 5)
    p, m, v = tf_vars(p0), tf_vars(m0), tf_vars(v0)
    step = tf.Variable(0, dtype=tf.int64)
    lr = tf.Variable(1e-3)

    @tf.function
    def train_step(gs):
        step.assign_add(1)
        lightseq_tf.multi_tensor_adam(p, m, v, gs, lr, 0.9, 0.999, 1e-6, 0.01, step, adamw=True)

    rp, rm, rv = list(p0), list(m0), list(v0)
    for k in range(1, 4):
        lr.assign(1e-3 / k)
        gs = make_grads(shapes, tf.float32, 10 + k)
        train_step(gs)
        for i, g in enumerate(gs):
            rp[i], rm[i], rv[i] = numpy_adam(rp[i], rm[i], rv[i], g.numpy(), 1e-3 / k, 0.9, 0.999,
                                             1e-6, 0.01, k, True, 1.0)
    assert train_step.experimental_get_tracing_count() == 1
    assert_bits_equal(p, rp, "var")
    assert_bits_equal(m, rm, "m")
    assert_bits_equal(v, rv, "v")


def test_mixed_grad_dtypes_one_call():
    shapes = [(9,), (3, 5), (2,)]
    p0, m0, v0 = make_state(shapes, 6)
    p, m, v = tf_vars(p0), tf_vars(m0), tf_vars(v0)
    gs = [make_grads([s], d, 7 + i)[0] for i, (s, d) in
          enumerate(zip(shapes, [tf.float16, tf.float32, tf.bfloat16]))]
    lightseq_tf.multi_tensor_adam(p, m, v, gs, 1e-2, 0.9, 0.999, 1e-8, 0.0, 1)
    for i, g in enumerate(gs):
        ref = numpy_adam(p0[i], m0[i], v0[i], tf.cast(g, tf.float32).numpy(), 1e-2, 0.9, 0.999,
                         1e-8, 0.0, 1, False, 1.0)
        assert_bits_equal([p[i], m[i], v[i]], ref, f"tensor {i}")


def test_indexed_slices_grad_is_applied_densely():
    table = tf.Variable(np.random.default_rng(8).standard_normal((10, 4)).astype(F32))
    init = table.numpy()
    m, v = tf.Variable(tf.zeros((10, 4))), tf.Variable(tf.zeros((10, 4)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, [1, 3, 3]) ** 2)
    g = tape.gradient(loss, table)
    assert isinstance(g, tf.IndexedSlices)
    lightseq_tf.multi_tensor_adam([table], [m], [v], [g], 1e-2, 0.9, 0.999, 1e-8, 0.0, 1)
    ref = numpy_adam(init, np.zeros((10, 4), F32), np.zeros((10, 4), F32),
                     tf.convert_to_tensor(g).numpy(), 1e-2, 0.9, 0.999, 1e-8, 0.0, 1, False, 1.0)
    assert_bits_equal([table, m, v], ref, "table")


def test_keras_variables_are_accepted():
    """Keras 3 variables (what a Keras optimizer holds) expose their handle."""
    import keras

    p0, m0, v0 = make_state([(6,), (2, 3)], 13)
    p, m, v = ([keras.Variable(a) for a in x] for x in (p0, m0, v0))
    gs = make_grads([(6,), (2, 3)], tf.float32, 14)
    lightseq_tf.multi_tensor_adam(p, m, v, gs, 1e-2, 0.9, 0.999, 1e-8, 0.0, 2)
    for i, g in enumerate(gs):
        ref = numpy_adam(p0[i], m0[i], v0[i], g.numpy(), 1e-2, 0.9, 0.999, 1e-8, 0.0, 2, False,
                         1.0)
        assert_bits_equal([np.asarray(x[i].numpy()) for x in (p, m, v)], ref, f"keras {i}")


def test_readers_keep_their_value_copy_on_write():
    p = tf.Variable(np.ones(64, F32))
    m, v = tf.Variable(tf.zeros(64)), tf.Variable(tf.zeros(64))
    before = p.value()  # shares the variable's buffer until the update
    lightseq_tf.multi_tensor_adam([p], [m], [v], [tf.ones(64)], 0.1, 0.9, 0.999, 1e-8, 0.0, 1)
    np.testing.assert_array_equal(before.numpy(), np.ones(64, F32))
    assert np.all(p.numpy() < 1)


@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
def test_close_to_keras_optimizer(adamw):
    """Keras folds both bias corrections into the step size and adds epsilon
    to the uncorrected sqrt(v): p -= lr*sqrt(bc2)/bc1 * m / (sqrt(v) + eps),
    i.e. our formula with eps scaled by sqrt(bc2) (torch's placement differs
    from Keras'); its decay (AdamW) is p -= p*wd*lr before the step. With eps
    small against sqrt(v) the total updates (differences of rounded weights)
    agree within 1e-4 relative, and no weight differs by 1e-4 of one step's
    size (lr) after 5 steps."""
    import keras

    shapes = [(7,), (33, 5), (1,)]
    p0, _, _ = make_state(shapes, 9)
    zeros = [np.zeros(s, F32) for s in shapes]
    ours, m, v = tf_vars(p0), tf_vars(zeros), tf_vars(zeros)
    theirs = [keras.Variable(a) for a in p0]
    wd = 0.05 if adamw else None
    opt = (keras.optimizers.AdamW(1e-2, weight_decay=wd, beta_1=0.9, beta_2=0.999, epsilon=1e-10)
           if adamw else keras.optimizers.Adam(1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-10))
    for step in range(1, 6):
        gs = make_grads(shapes, tf.float32, 20 + step)
        opt.apply_gradients(zip(gs, theirs))
        lightseq_tf.multi_tensor_adam(ours, m, v, gs, 1e-2, 0.9, 0.999, 1e-10,
                                      wd or 0.0, step, adamw=adamw)
    for a, b, p in zip(ours, theirs, p0):
        a, b = a.numpy(), np.asarray(b.numpy())
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert rel_err(a - p, b - p) < 1e-4


def _run(**kw):
    shapes = kw.pop("shapes", [(4,), (3,)])
    p, m, v = (tf_vars(x) for x in make_state(shapes, 11))
    grads = kw.pop("grads", [tf.ones(s) for s in shapes])
    args = dict(lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, weight_decay=0.0, step=1)
    args.update(kw)
    lightseq_tf.multi_tensor_adam(kw.pop("var", p), kw.pop("m", m), v, grads, **{
        k: a for k, a in args.items() if k not in ("var", "m")})


@pytest.mark.parametrize("kw,msg", [
    (dict(lr=-1.0), "lr must be finite and >= 0"),
    (dict(lr=float("nan")), "lr must be finite"),
    (dict(beta1=1.0), "beta1 must be in [0, 1)"),
    (dict(beta2=-0.1), "beta2 must be in [0, 1)"),
    (dict(epsilon=0.0), "epsilon must be finite and > 0"),
    (dict(weight_decay=-0.5), "weight_decay must be finite and >= 0"),
    (dict(step=0), "step must be >= 1"),
    (dict(grad_scale=0.0), "grad_scale must be finite and > 0"),
    (dict(grad_scale=float("inf")), "grad_scale must be finite"),
    (dict(lr=tf.constant([1e-3, 1e-3])), "lr must be a scalar"),
    (dict(found_inf=tf.zeros([1])), "found_inf must be a scalar"),
    (dict(grads=[tf.ones(4), tf.ones(5)]), "var[1] has shape [3] but grad[1] has shape [5]"),
], ids=lambda x: str(x)[:40])
def test_invalid_arguments_are_named(kw, msg):
    with pytest.raises(tf.errors.InvalidArgumentError, match=msg.replace("[", r"\[").replace(
            "(", r"\(").replace(")", r"\)")):
        _run(**kw)


def test_invalid_variables_are_named():
    p, m, v = (tf_vars(x) for x in make_state([(4,), (3,)], 12))
    g = [tf.ones(4), tf.ones(3)]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"var\[1\] and v\[1\] are the same"):
        lightseq_tf.multi_tensor_adam(p, m, [v[0], p[1]], g, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"m\[0\] must be a float32 variable"):
        lightseq_tf.multi_tensor_adam(p, [tf.Variable(tf.zeros(4, tf.float64)), m[1]], v, g,
                                      1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    with pytest.raises(ValueError, match="equal lengths"):
        lightseq_tf.multi_tensor_adam(p, m, v[:1], g, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    with pytest.raises(TypeError, match="resource variables"):
        lightseq_tf.multi_tensor_adam([tf.ones(4), p[1]], m, v, g, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    # nothing was updated by the failed calls
    assert_bits_equal(p, make_state([(4,), (3,)], 12)[0], "var")


def test_no_gradient_registered():
    p = tf.Variable(tf.ones(3))
    m, v = tf.Variable(tf.zeros(3)), tf.Variable(tf.zeros(3))
    g = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(g)
        lightseq_tf.multi_tensor_adam([p], [m], [v], [g], 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
        y = tf.reduce_sum(p)
    assert tape.gradient(y, g) is None
