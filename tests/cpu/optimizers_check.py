"""LSAdam checks that must hold under both Keras 3 and tf_keras: run in-process
by test_optimizers.py (Keras 3) and as a script with TF_USE_LEGACY_KERAS=1
(tf_keras, NeurST's Keras 2) by the same test file. Each check compares
LSAdam with the stock Adam of the same Keras, fed the same gradients.

Tolerances (eps = float32 machine epsilon, 1.19e-7):
- Betas whose powers are exact in float32 (0.5, 0.75): Keras and the op then
  use the same bias corrections and the same 1 - beta, so the two differ only
  in the float32 order of operations (Keras: m += (g - m) * (1 - b1), update
  m * alpha / (sqrt(v) + eps); the op: b1 * m + (1 - b1) * g, update
  step_size * (m / (sqrt(v) / sqrt(bc2) + eps'))): about one rounding per
  step on the update (|update| <~ lr for these betas) and one on p. Bound:
  per element |p - p_keras| <= steps * 2 eps * (lr + |p|) (measured: 0.65);
  slots (all variables' m, all v) within 2 eps in relative L2 (measured:
  0.33 eps). The epsilon used (0.3, comparable to sqrt(v)) makes its
  conversion matter: a wrong placement, step or lr (even lr * 1.00001) fails.
- Common betas (0.9, 0.999): Keras computes 1 - beta2^t from a float32 power
  (1 - 0.999^t keeps ~4 of float32's 7 digits) and Keras 3 takes 1 - beta
  from the Python double (0.001) while the op uses 1 - float32(0.999)
  (1.3e-5 apart); the op's bias corrections are float64. Total updates over
  6 steps, relative L2: measured 2.6e-5 (tf_keras), 1.8e-5 (Keras 3); bound
  1e-4, as test_adam.py's comparison with Keras.
"""
import contextlib
import functools
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
import lightseq_tf  # noqa: E402
from lightseq_tf.layers._keras import KERAS3  # noqa: E402
from tolerances import rel_err  # noqa: E402

keras = tf.keras
StockAdam = keras.optimizers.Adam if KERAS3 else keras.optimizers.legacy.Adam
EPS = float(np.finfo(np.float32).eps)
SHAPES = [(7,), (33, 5), (1,), (4, 3, 2)]
TABLE = (10, 4)  # gets an IndexedSlices gradient (tf.gather)
EXACT = dict(beta_1=0.5, beta_2=0.75, epsilon=0.3)  # float32-exact beta powers
COMMON = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7)
ULPS_PER_STEP = 2  # see the tolerances above
FUSED_OP, KERAS2_OPS = "LightseqMultiTensorAdam", ("ResourceApplyAdam", "ResourceScatterAdd")


def initial(shapes, scale, seed=0):
    # weights of the order of lr, so that p's rounding does not hide the update's
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(s)).astype(np.float32) for s in shapes]


def grads_for(variables, step, dtypes=None):
    """Random dense grads (in `dtypes`, default float32) for all but the last
    variable, and an IndexedSlices grad with a repeated row for the last."""
    rng = np.random.default_rng(100 + step)
    dtypes = dtypes or [tf.float32] * len(variables)
    out = [tf.cast(rng.standard_normal(v.shape).astype(np.float32), d)
           for v, d in zip(variables[:-1], dtypes)]
    table = variables[-1]
    with tf.GradientTape() as tape:
        rows = tf.gather(table, [1, 3, 3, 8])
        loss = tf.reduce_sum(rows * tf.constant(rng.standard_normal((4, TABLE[1])), tf.float32))
    sparse = tape.gradient(loss, table)
    assert isinstance(sparse, tf.IndexedSlices)
    return out + [sparse]


def for_stock(g):
    """The gradient stock Adam gets for LSAdam's g: float32 (exact for fp16,
    bf16). IndexedSlices stay sparse for tf_keras (its sparse Adam sums
    duplicate rows first) but go dense for Keras 3, whose Adam squares the
    slices of a repeated row before summing them into v ((a^2 + b^2) instead
    of (a + b)^2; LSAdam, like tf_keras, applies the summed gradient)."""
    if isinstance(g, tf.IndexedSlices):
        return tf.convert_to_tensor(g) if KERAS3 else g
    return tf.cast(g, tf.float32)


def slots(opt, var):
    if KERAS3:
        i = opt._get_variable_index(var)
        return opt._momentums[i], opt._velocities[i]
    return opt.get_slot(var, "m"), opt.get_slot(var, "v")


def build(opt, variables):
    """Creates the optimizer's variables eagerly (not on a tf.function's first trace)."""
    if KERAS3:
        opt.build(variables)
    else:
        opt._create_all_weights(variables)


def make_pair(kw, lr, scale, shapes=SHAPES):
    p0 = initial(list(shapes) + [TABLE], scale)
    ours, theirs = [tf.Variable(a) for a in p0], [tf.Variable(a) for a in p0]
    return ours, theirs, lightseq_tf.LSAdam(learning_rate=lr, **kw), StockAdam(
        learning_rate=lr, **kw)


def assert_weights_tight(ours, theirs, steps, lr):
    for a, b in zip(ours, theirs):
        a, b = np.asarray(a.numpy()), np.asarray(b.numpy())
        tol = steps * ULPS_PER_STEP * EPS * (lr + np.abs(b))
        bad = np.abs(a - b) > tol
        assert not bad.any(), (a[bad], b[bad], (np.abs(a - b) / (EPS * (lr + np.abs(b))))[bad])


def assert_tight(ours, theirs, opt_ours, opt_theirs, steps, lr):
    assert_weights_tight(ours, theirs, steps, lr)
    # Slots over all variables together: an element where m nearly cancels
    # (b1 * m ~ -(1 - b1) * g) has a large error relative to itself, but
    # not to the gradients that made it.
    for k in range(2):
        flat = [np.concatenate([np.ravel(slots(o, v)[k].numpy()) for v in vs])
                for o, vs in ((opt_ours, ours), (opt_theirs, theirs))]
        assert rel_err(*flat) < ULPS_PER_STEP * EPS, ("mv"[k], rel_err(*flat) / EPS)


def graph_op_types(fn, *args):
    """Op types of a tf.function's graph and the functions it calls."""
    gdef = fn.get_concrete_function(*args).graph.as_graph_def()
    types = [n.op for n in gdef.node]
    for f in gdef.library.function:
        types += [n.op for n in f.node_def]
    return types


def check_matches_keras_adam_exact_betas():
    """Constant LR and a schedule; float32, float16 and bfloat16 grads (the
    stock optimizer gets them exactly cast to float32); an IndexedSlices grad."""
    dtypes = [tf.float32, tf.float16, tf.float32, tf.bfloat16]
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    for lr, lr0 in ((0.05, 0.05), (schedule, 0.05)):
        ours, theirs, a, b = make_pair(EXACT, lr, lr0)
        for step in range(1, 7):
            gs = grads_for(ours, step, dtypes)
            a.apply_gradients(zip(gs, ours))
            b.apply_gradients(zip([for_stock(g) for g in gs], theirs))
            assert_tight(ours, theirs, a, b, step, lr0)
        assert int(a.iterations.numpy()) == 6
        assert rel_err(ours[1].numpy(), initial(SHAPES, lr0)[1]) > 0.5  # the weights moved


def check_matches_keras_adam_common_betas():
    ours, theirs, a, b = make_pair(COMMON, 1e-3, 1e-3)
    p0 = initial(list(SHAPES) + [TABLE], 1e-3)
    for step in range(1, 7):
        gs = grads_for(ours, step)
        a.apply_gradients(zip(gs, ours))
        b.apply_gradients(zip([for_stock(g) for g in gs], theirs))
    for x, y, p in zip(ours, theirs, p0):
        assert rel_err(x.numpy() - p, y.numpy() - p) < 1e-4


def check_base_class_features():
    """What the base optimizer does around the Adam math stays its own:
    clipping (both), weight decay and EMA (Keras 3)."""
    extra = (dict(weight_decay=0.1, global_clipnorm=3.0, use_ema=True, ema_momentum=0.5) if KERAS3
             else dict(clipnorm=2.0, clipvalue=0.9))
    ours, theirs, a, b = make_pair(dict(EXACT, **extra), 0.05, 0.05)
    for step in range(1, 4):
        # dense grads for both: Keras 3 clips an IndexedSlices by the norm of
        # its unsummed slices, which differs from its dense twin's
        gs = [tf.convert_to_tensor(g) for g in grads_for(ours, step)]
        a.apply_gradients(zip(gs, ours))
        b.apply_gradients(zip(gs, theirs))
    assert_tight(ours, theirs, a, b, 3, 0.05)
    if KERAS3:
        assert_weights_tight(a._model_variables_moving_average,
                             b._model_variables_moving_average, 3, 0.05)


def check_fused_graph_and_tf_function_steps():
    """One fused op per grad dtype and no per-variable Adam in the graph of a
    tf.function step, traced once, matching stock Adam over the steps."""
    ours, theirs, a, b = make_pair(EXACT, 0.05, 0.05)
    build(a, ours)
    dtypes = [tf.float32, tf.float16, tf.float32, tf.float32]

    @tf.function
    def step_fn(gs):
        a.apply_gradients(zip(gs, ours))

    types = graph_op_types(step_fn, grads_for(ours, 1, dtypes))
    assert types.count(FUSED_OP) == 2, types  # float32 and float16 grads
    assert not set(KERAS2_OPS) & set(types), types
    if KERAS3:  # its per-variable path is assign_add/assign_sub on m, v, p
        assert "AssignSubVariableOp" not in types, types
    for step in range(1, 4):
        gs = grads_for(ours, step, dtypes)
        step_fn(gs)
        b.apply_gradients(zip([for_stock(g) for g in gs], theirs))
    assert step_fn.experimental_get_tracing_count() == 1
    assert_tight(ours, theirs, a, b, 3, 0.05)


def check_fallbacks():
    """AMSGrad takes the parent's path for all variables, a float64 variable
    (and, for tf_keras, a constrained one) for itself, the others staying
    fused; a mirroring strategy stays fused. The parent's updates are
    bit-identical to stock Adam's. (Dense grads: this is about routing.)"""
    def clip(x):
        return tf.clip_by_value(x, -0.01, 0.01)

    def run(opt_kw, strategy=None, mixed=False):
        with strategy.scope() if strategy else contextlib.nullcontext():
            ours, theirs, a, b = make_pair(dict(EXACT, **opt_kw), 0.05, 0.05,
                                           [(3,), (5,)] if mixed else SHAPES)
            if mixed:
                for vs in (ours, theirs):
                    vs[0] = tf.Variable(tf.cast(vs[0], tf.float64))
                    vs[1] = tf.Variable(vs[1], constraint=clip)
            build(a, ours)
            build(b, theirs)

        def step_fn(opt, variables):
            def apply(gs):
                opt.apply_gradients(zip(gs, variables))
            return tf.function(lambda gs: strategy.run(apply, (gs,)) if strategy else apply(gs))

        step_ours, step_theirs = step_fn(a, ours), step_fn(b, theirs)
        for step in range(1, 3):
            gs = [tf.cast(tf.convert_to_tensor(g), v.dtype)
                  for g, v in zip(grads_for(ours, step), ours)]
            step_ours(gs)
            step_theirs(gs)
        return ours, theirs, graph_op_types(step_ours, gs)

    # (optimizer kwargs, strategy, mixed variables, fused ops expected): AMSGrad
    # falls back; a mirroring strategy (OneDeviceStrategy here; MirroredStrategy
    # over two devices in distributed_check.py) fuses once per replica.
    for kw, strategy, mixed, fused in ((dict(amsgrad=True), None, False, 0),
                                       ({}, tf.distribute.OneDeviceStrategy("/cpu:0"), False, 1),
                                       ({}, None, True, 1)):
        ours, theirs, types = run(kw, strategy, mixed)
        parent = ({0} if KERAS3 else {0, 1}) if mixed else \
            (set(range(len(ours))) if not fused else set())
        assert types.count(FUSED_OP) == fused, (kw, strategy, types)
        if not KERAS3 and parent:
            assert "ResourceApplyAdam" in types or "ResourceApplyAdamWithAmsgrad" in types
        for i, (x, y) in enumerate(zip(ours, theirs)):
            if i in parent:
                np.testing.assert_array_equal(x.numpy(), y.numpy())
            else:
                assert_weights_tight([x], [y], 2, 0.05)
        if mixed:
            assert np.abs(ours[1].numpy()).max() == np.float32(0.01)  # the constraint applied


def check_mixed_precision_with_loss_scaling():
    """A mixed_float16 model under each Keras' LossScaleOptimizer, tf.function
    steps, the fused op under the wrapper; a step with an infinite gradient
    is skipped by both."""
    def train_step(model, opt, poison):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(model(x), tf.float32) ** 2)
            scaled = opt.scale_loss(loss) if KERAS3 else opt.get_scaled_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        grads[0] = grads[0] + poison
        if KERAS3:
            opt.apply(grads, model.trainable_variables)
        else:
            opt.apply_gradients(zip(opt.get_unscaled_gradients(grads),
                                    model.trainable_variables))

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        models = [keras.Sequential([keras.Input([6]), keras.layers.Dense(5),
                                    keras.layers.Dense(3)]) for _ in range(2)]
        initial_weights = models[0].get_weights()
        models[1].set_weights(initial_weights)
        opts = [keras.mixed_precision.LossScaleOptimizer(adam(learning_rate=0.05, **EXACT),
                                                         initial_scale=256.0)
                for adam in (lightseq_tf.LSAdam, StockAdam)]
        for opt, model in zip(opts, models):
            build(opt.inner_optimizer, model.trainable_variables)
        x = tf.constant(np.random.default_rng(0).standard_normal((8, 6)), tf.float32)
        steps = [tf.function(functools.partial(train_step, m, o)) for m, o in zip(models, opts)]
        for step in range(1, 5):
            poison = tf.constant(float("inf") if step == 3 else 0.0)
            for fn in steps:
                fn(poison)
        assert FUSED_OP in graph_op_types(steps[0], poison)
        # tf_keras counts the skipped step in `iterations`, Keras 3 does not
        iterations = [int(o.iterations.numpy()) for o in opts]
        scales = [float((o.dynamic_scale if KERAS3 else o.loss_scale).numpy()) for o in opts]
        assert iterations == [3 if KERAS3 else 4] * 2 and scales == [128.0] * 2, (iterations,
                                                                                  scales)
        ours, theirs = models[0].trainable_variables, models[1].trainable_variables
        for x_, w0 in zip(ours, initial_weights):
            assert x_.dtype == tf.float32 and rel_err(np.asarray(x_.numpy()), w0) > 1e-2
        assert_weights_tight(ours, theirs, 3, 0.05)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def check_slots_config_and_hyper():
    ours, theirs, a, b = make_pair(EXACT, 0.05, 0.05)
    gs = grads_for(ours, 1)
    a.apply_gradients(zip(gs, ours))
    b.apply_gradients(zip([for_stock(g) for g in gs], theirs))
    for va, vb in zip(ours, theirs):
        for sa, sb in zip(slots(a, va), slots(b, vb)):
            assert (sa.name, tuple(sa.shape), sa.dtype) == (sb.name, tuple(sb.shape), sb.dtype)
    # A tf.train.Checkpoint of LSAdam restores into stock Adam, slots included.
    fresh, other = [tf.Variable(tf.zeros_like(v)) for v in ours], StockAdam(**EXACT)
    build(other, fresh)
    with tempfile.TemporaryDirectory() as d:
        path = tf.train.Checkpoint(opt=a, vars=ours).save(os.path.join(d, "ckpt"))
        tf.train.Checkpoint(opt=other, vars=fresh).restore(path).assert_consumed()
    assert int(other.iterations.numpy()) == 1
    for va, vb in zip(ours, fresh):
        for sa, sb in zip(slots(a, va), slots(other, vb)):
            np.testing.assert_array_equal(np.asarray(sa.numpy()), np.asarray(sb.numpy()))
    config = a.get_config()
    stock = b.get_config()
    assert {k: v for k, v in config.items() if k != "name"} == \
        {k: v for k, v in stock.items() if k != "name"}, (config, stock)
    again = lightseq_tf.LSAdam.from_config(config)
    assert type(again) is lightseq_tf.LSAdam and again.get_config() == config
    assert keras.utils.get_registered_name(lightseq_tf.LSAdam) == "lightseq_tf>LSAdam"
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(a))
    assert type(restored) is lightseq_tf.LSAdam and restored.get_config() == config
    if not KERAS3:
        # NeurST swaps in its schedule after construction
        schedule = keras.optimizers.schedules.InverseTimeDecay(0.05, 1, 0.5)
        ours, theirs, a, b = make_pair(EXACT, 1.0, 0.05)
        for opt in (a, b):
            opt._set_hyper("learning_rate", schedule)
        for step in range(1, 4):
            gs = grads_for(ours, step)
            a.apply_gradients(zip(gs, ours))
            b.apply_gradients(zip([for_stock(g) for g in gs], theirs))
        assert_tight(ours, theirs, a, b, 3, 0.05)
        config = a.get_config()
        assert config["learning_rate"]["class_name"] == "InverseTimeDecay", config
        assert isinstance(lightseq_tf.LSAdam.from_config(config)._get_hyper("learning_rate"),
                          keras.optimizers.schedules.InverseTimeDecay)


def check_compile_fit_and_save():
    """model.fit with LSAdam built the way NeurST's registry builds it,
    clipping included, trains like stock Adam; the trained model saves and
    reloads with its optimizer."""
    params = dict(learning_rate=0.05, beta_1=0.9, beta_2=0.98, epsilon=1e-9, amsgrad=False,
                  clipnorm=1.0, clipvalue=None, name="Adam")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = x @ rng.standard_normal((4, 1)).astype(np.float32)
    models = [keras.Sequential([keras.Input([4]), keras.layers.Dense(8, activation="tanh"),
                                keras.layers.Dense(1)]) for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    losses = []
    for model, adam in zip(models, (lightseq_tf.LSAdam, StockAdam)):
        model.compile(optimizer=adam(**params), loss="mse")
        losses.append(model.fit(x, y, batch_size=16, epochs=4, shuffle=False,
                                verbose=0).history["loss"])
    model = models[0]
    assert losses[0][-1] < 0.5 * losses[0][0], losses
    assert int(model.optimizer.iterations.numpy()) == 16
    for a, b in zip(model.get_weights(), models[1].get_weights()):
        assert rel_err(a, b) < 1e-4, rel_err(a, b)
    with tempfile.TemporaryDirectory() as d:
        # tf_keras' .keras format does not keep a legacy optimizer's state (nor Adam's)
        path = os.path.join(d, "m.keras" if KERAS3 else "m.h5")
        model.save(path)
        again = keras.models.load_model(path)
    assert type(again.optimizer) is lightseq_tf.LSAdam
    assert int(again.optimizer.iterations.numpy()) == 16
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def check_bad_input():
    """Checked arguments fail clearly (the op names what it rejects) and
    leave the variable untouched."""
    for eps in (-1.0, float("nan")):
        try:
            lightseq_tf.LSAdam(epsilon=eps)
        except ValueError as e:
            assert "epsilon > 0" in str(e)
        else:
            raise AssertionError(f"no error for epsilon={eps}")
    v = tf.Variable(tf.zeros([4]))
    for opt, grad, match in ((lightseq_tf.LSAdam(), tf.ones([5]), "has shape [4] but grad"),
                             (lightseq_tf.LSAdam(learning_rate=-1.0), tf.ones([4]),
                              "lr must be finite and >= 0")):
        try:
            opt.apply_gradients([(grad, v)])
        except tf.errors.InvalidArgumentError as e:
            assert match in str(e), e
        else:
            raise AssertionError("no error for " + match)
    np.testing.assert_array_equal(v.numpy(), np.zeros(4, np.float32))


CHECKS = [check_matches_keras_adam_exact_betas, check_matches_keras_adam_common_betas,
          check_base_class_features, check_fused_graph_and_tf_function_steps, check_fallbacks,
          check_mixed_precision_with_loss_scaling, check_slots_config_and_hyper,
          check_compile_fit_and_save, check_bad_input]

if __name__ == "__main__":
    for check in CHECKS:
        check()
        print("passed", check.__name__, flush=True)
    print("ALL OK keras", "3" if KERAS3 else "2.")
