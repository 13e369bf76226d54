"""README's bad-input tables on the device under test. Every check the
kernels make on the host (shapes, attributes, scalars in host memory) is the
CPU's: tests/cpu's own rejection tests run here as they are, inside the
device scope. What only the data shows is handled by the GPU as README says:
lengths outside [0, L] are clamped (the result equals the clamped lengths'),
an out-of-range cross-entropy target gives NaN for its token, an out-of-range
embedding id raises InvalidArgumentError naming it once the stream reaches
it, and the process goes on. On the CPU (the override) those cases raise."""
import target  # noqa: F401  (first: skips this module where TensorFlow lists no GPU)

import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
import test_adam as adam_t
import test_bias_act_dropout as bad_t
import test_bias_dropout_residual as bdr_t
import test_cross_entropy as ce_t
import test_decoder_layer as dec_t
import test_decoder_layer_op as dec_op
import test_decoder_step_op as step_op
import test_dropout as do_t
import test_embedding as emb_t
import test_encoder_layer as enc_t
import test_encoder_layer_op as enc_op
import test_heads as heads_t
import test_layer_norm as ln_t
import test_softmax as sm_t
from lightseq_tf.ops._library import ops
from target import ON_GPU, assert_placed, on_target
from tolerances import rel_err


def cases(test_fn):
    """The parameter sets of one of tests/cpu's parametrized tests."""
    marks = [m for m in getattr(test_fn, "pytestmark", []) if m.name == "parametrize"]
    assert len(marks) == 1, test_fn
    names, values = marks[0].args[0], marks[0].args[1]
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    return [dict(zip(names, v if len(names) > 1 else (v,))) for v in values]


# tests/cpu rejection tests whose every case is decided on the host.
HOST_CHECKED = [
    (ln_t.test_bad_input_is_invalid_argument, None),
    (ln_t.test_grad_op_bad_input, None),
    (ln_t.test_bad_input_with_unknown_static_shapes_fails_in_the_kernel, {}),
    (ln_t.test_bad_input_with_static_shapes_fails_at_trace_time, {}),
    (ln_t.test_mixed_dtypes_are_rejected, {}),
    (ln_t.test_unsupported_dtype_is_rejected, {}),
    (do_t.test_rate_outside_range_is_invalid_argument, None),
    (do_t.test_seed_must_be_a_scalar, {}),
    (bdr_t.test_bad_input_is_invalid_argument, None),
    (bad_t.test_bad_input_is_invalid_argument, None),
    (bad_t.test_unknown_activation_is_rejected, {}),
    (heads_t.test_bad_input_is_invalid_argument, None),
    (emb_t.test_bad_arguments, {}),
    (enc_op.test_grad_op_checks_saved_and_dy, {}),
    (step_op.test_limits, {}),
    (adam_t.test_invalid_arguments_are_named, None),
    (adam_t.test_invalid_variables_are_named, {}),
]
HOST_CASES = [(fn, kw) for fn, only in HOST_CHECKED for kw in (cases(fn) if only is None else [only])]


@pytest.mark.parametrize("fn,kwargs", HOST_CASES,
                         ids=["%s.%s-%d" % (f.__module__, f.__name__, i)
                              for i, (f, _) in enumerate(HOST_CASES)])
def test_host_checks_as_on_the_cpu(fn, kwargs):
    with on_target():
        fn(**kwargs)


# Keras layers' and model's checks (README's second table): ValueErrors at
# call / trace time and graph assertions, whose Assert ops TF keeps on the host.
@pytest.mark.parametrize("fn", [enc_t.test_limits_and_bad_input, dec_t.test_bad_cache_and_limits],
                         ids=lambda f: f.__module__)
def test_layer_checks_as_on_the_cpu(fn):
    with on_target(strict=False):
        fn()


DATA_DEPENDENT = {"length_too_long", "negative_length", "target_high", "target_negative"}


@pytest.mark.parametrize("case,match", [(c["case"], c["match"]) for c in
                                        cases(sm_t.test_bad_input_is_invalid_argument)
                                        if c["case"] not in DATA_DEPENDENT])
def test_softmax_host_checks(case, match):
    with on_target():
        sm_t.test_bad_input_is_invalid_argument(case, match)


@pytest.mark.parametrize("case,match", [(c["case"], c["match"]) for c in
                                        cases(ce_t.test_bad_input_is_invalid_argument)
                                        if c["case"] not in DATA_DEPENDENT])
def test_cross_entropy_host_checks(case, match):
    with on_target():
        ce_t.test_bad_input_is_invalid_argument(case, match)


def test_softmax_lengths_outside_range_are_clamped_on_the_gpu():
    s = tf.random.stateless_normal([3, 2, 3, 6], [1, 1])
    seed = tf.constant(1, tf.int64)
    bad, clamped = tf.constant([6, 9, -1]), tf.constant([6, 6, 0])
    with on_target():
        if not ON_GPU:
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"lengths\[1\] = 9"):
                ops().lightseq_attn_softmax(s, bad, seed, scale=1.0, causal=False, rate=0.1)
            return
        got = ops().lightseq_attn_softmax(s, bad, seed, scale=1.0, causal=False, rate=0.1)
        want = ops().lightseq_attn_softmax(s, clamped, seed, scale=1.0, causal=False, rate=0.1)
    assert_placed(got)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("kind", ["encoder", "decoder", "decoder_step"])
def test_layer_lengths_outside_range_are_clamped_on_the_gpu(kind):
    """README: lengths [B] each in [0, L] / [0, S] (CPU; the GPU clamps):
    bit for bit the clamped lengths' result, forward and backward."""
    if kind == "encoder":
        x, lengths, params = enc_op.raw_inputs(b=3)  # length 5
        bad, clamped = tf.constant([5, 9, -2]), tf.constant([5, 5, 0])

        def run(lens):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = lightseq_tf.ops.encoder_layer(x, lens, dict(zip(enc_op.PARAMS, params)),
                                                  enc_op.HEADS, True)
            return [y, tape.gradient(y, x)]
        match = r"lengths\[1\] = 9"
    elif kind == "decoder":
        x, memory, lengths, params = dec_op.raw_inputs(b=3)  # memory length 4
        bad, clamped = tf.constant([4, 7, -1]), tf.constant([4, 4, 0])

        def run(lens):
            with tf.GradientTape() as tape:
                tape.watch([x, memory])
                y = lightseq_tf.ops.decoder_layer(x, memory, lens, dict(zip(dec_op.PARAMS, params)),
                                                  dec_op.HEADS, True)
            return [y] + tape.gradient(y, [x, memory])
        match = r"mem_lengths\[1\] = 7"
    else:
        p = step_op.params()
        x, keys, values, mem_k, mem_v, _ = step_op.case(n=1, cached=4)  # memory length 5
        bad, clamped = tf.constant([5, 9, -1]), tf.constant([5, 5, 0])

        def run(lens):
            return list(step_op.step(p, x, keys, values, None, mem_k, mem_v, lens))
        match = r"memory_lengths\[1\] = 9"
    with on_target():
        if not ON_GPU:
            with pytest.raises(tf.errors.InvalidArgumentError, match=match):
                run(bad)
            return
        got, want = run(bad), run(clamped)
    assert_placed(got)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_cross_entropy_target_outside_range_on_the_gpu():
    """CPU: InvalidArgumentError naming the target. GPU: NaN for that token's
    loss and the sums (no host sync to report it), never a read outside the
    logits (memcheck runs this); the other tokens are exact. The gradient op
    alone (fed the forward's outputs) likewise."""
    logits = tf.random.stateless_normal([4, 7], [2, 2])
    targets = tf.constant([1, 7, 2, -5])
    with on_target():
        if not ON_GPU:
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"targets\[1\] = 7"):
                lightseq_tf.cross_entropy(logits, targets, 0.1)
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"targets\[0\] = 9"):
                ops().lightseq_cross_entropy_grad(tf.ones([1]), tf.ones([1]), tf.zeros([1, 4]),
                                                  tf.constant([9]), tf.zeros([1]), tf.zeros([1]),
                                                  epsilon=0.1)
            return
        loss, nll, sums = lightseq_tf.cross_entropy(logits, targets, 0.1)
        good_loss, _, _ = lightseq_tf.cross_entropy(logits, tf.constant([1, 0, 2, 0]), 0.1)
        d = ops().lightseq_cross_entropy_grad(tf.ones([1]), tf.ones([1]), tf.zeros([1, 4]),
                                              tf.constant([9]), tf.zeros([1]), tf.zeros([1]),
                                              epsilon=0.1)
    loss = loss.numpy()
    assert np.all(np.isnan(loss[[1, 3]])) and np.isnan(sums.numpy()[0])
    np.testing.assert_array_equal(loss[[0, 2]], good_loss.numpy()[[0, 2]])
    assert np.all(np.isnan(d.numpy()))


@pytest.mark.parametrize("bad", [-1, 7, 1 << 40])
def test_embedding_id_outside_vocab_raises_and_the_process_lives(bad):
    """Both devices: InvalidArgumentError naming the id's flat index and the
    vocabulary (the GPU's arrives asynchronously, when the stream gets there).
    Afterwards the device still computes: the error left nothing broken."""
    table = tf.random.stateless_normal([7, 8], [3, 3])
    ids = tf.constant([[1, 2], [3, bad]], tf.int64)
    with on_target():
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"ids \(flat index 3\).*vocab = 7"):
            y = lightseq_tf.embedding(ids, table)
            y.numpy()  # the GPU's error may surface at the first read
        # in a graph too, and the next ops run
        fn = tf.function(lambda i: lightseq_tf.embedding(i, table))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"flat index 3"):
            fn(ids).numpy()
        good = lightseq_tf.embedding(tf.constant([[1, 2], [3, 4]], tf.int64), table)
        again = fn(tf.constant([[1, 2], [3, 4]], tf.int64))
    assert_placed(good, again)
    with tf.device("/CPU:0"):
        want = tf.gather(table, [[1, 2], [3, 4]]) * 8 ** 0.5 + emb_t.neurst_signal(2, 8)
    assert rel_err(good, want.numpy()) < 1e-6
    np.testing.assert_array_equal(good.numpy(), again.numpy())


def test_embedding_gradient_skips_bad_ids_on_the_gpu():
    """The gradient op alone: the CPU rejects an out-of-range id; the GPU
    (README: "the backward skips such ids") gives exactly the gradient of the
    valid tokens: that of the same ids with the bad token's dy row zeroed."""
    ids = tf.constant([[1, 2], [3, 7]], tf.int64)
    dy = tf.random.stateless_normal([2, 2, 8], [4, 4])
    dy_without = tf.concat([dy[:, :1], tf.stack([dy[0, 1], tf.zeros([8])])[:, None]], 1)
    grad = lambda i, d: ops().lightseq_embedding_grad(d, i, 7, tf.constant(0, tf.int64),  # noqa
                                                      Ttable=tf.float32)
    with on_target():
        if not ON_GPU:
            with pytest.raises(tf.errors.InvalidArgumentError, match="ids"):
                grad(ids, dy)
            return
        got = grad(ids, dy)
        want = grad(tf.constant([[1, 2], [3, 0]], tf.int64), dy_without)
    assert_placed(got)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


# The whole-layer and decoding-step ops' host checks. (tests/cpu's versions
# also hold a data-dependent lengths case each, which the GPU clamps: above.)
def enc(change=None, **attrs):
    """tests/cpu's raw encoder op call, its inputs changed by `change`."""
    x, lengths, params = enc_op.raw_inputs()
    x, lengths, params = (change or (lambda *a: a))(x, lengths, list(params))
    return enc_op.run_raw(x, lengths, params, **attrs)


def dec(change=None, **attrs):
    x, memory, lengths, params = dec_op.raw_inputs()
    return dec_op.run_raw(*(change or (lambda *a: a))(x, memory, lengths, list(params)), **attrs)


def replaced(params, i, t):
    return params[:i] + [t] + params[i + 1:]


def step(**changes):
    """tests/cpu's decoding step call with some arguments replaced."""
    x, keys, values, mem_k, mem_v, lengths = step_op.case(n=1, cached=4)
    a = dict(p=step_op.params(), x=x, keys=keys, values=values, t=None, mem_k=mem_k,
             mem_v=mem_v, lengths=lengths, append=True)
    a.update({k: (v(a) if callable(v) else v) for k, v in changes.items()})
    return step_op.step(a["p"], a["x"], a["keys"], a["values"], a["t"], a["mem_k"], a["mem_v"],
                        a["lengths"], append=a["append"])


H = enc_op.H
ENCODER_CASES = [
    ("rank 3", lambda: enc(lambda x, l, p: (x[0], l, p))),
    ("divisible by heads = 5", lambda: enc(heads=5)),
    ("out_kernel must have shape", lambda: enc(lambda x, l, p: (x, l, replaced(
        p, 4, tf.zeros([H, H + 1]))))),
    ("lengths must have shape", lambda: enc(lambda x, l, p: (x, tf.constant([5, 5, 5]), p))),
    ("attn_dropout must be in", lambda: enc(attn_dropout=1.0)),
    ("hidden_dropout must be in", lambda: enc(hidden_dropout=-0.1)),
    ("epsilon must be", lambda: enc(epsilon=0.0)),
    ("activation", lambda: enc(activation="swish")),
]
DECODER_CASES = [
    ("memory must have shape", lambda: dec(lambda x, m, l, p: (x, m[:1], l, p))),
    ("memory must have shape", lambda: dec(lambda x, m, l, p: (x, m[:, :, :-1], l, p))),
    ("kv_kernel must have shape", lambda: dec(lambda x, m, l, p: (x, m, l, replaced(
        p, 10, tf.zeros([H, H]))))),
    ("divisible by heads = 3", lambda: dec(heads=3)),
    ("act_dropout must be in", lambda: dec(act_dropout=1.5)),
    ("memory must have at least one position",
     lambda: dec(lambda x, m, l, p: (x, m[:, :0], tf.zeros([2], tf.int32), p))),
]
STEP_CASES = [
    ("cache_keys must have shape", lambda: step(keys=lambda a: a["keys"][:, :, :2],
                                                values=lambda a: a["values"][:, :, :2])),
    (r"cache_length \(3\) must equal the cache's length 4", lambda: step(t=3)),
    (r"position cache_length \(4\) \+ 1 new position\(s\) exceeds the padded cache length 4",
     lambda: step(t=4, append=False)),
    ("cache_length < 0", lambda: step(t=-1, append=False)),
    ("memory_keys must have shape|Dimension", lambda: step(mem_k=lambda a: a["mem_k"][:2],
                                                           mem_v=lambda a: a["mem_v"][:2])),
    ("out_kernel must have shape", lambda: step(p=lambda a: dict(
        a["p"], out_kernel=a["p"]["out_kernel"][:, :5]))),
    ("hidden size 32 .* divisible by heads = 3", lambda: lightseq_tf.ops.decoder_step(
        *step_op.case(n=1, cached=4)[:3], None, *step_op.case(n=1, cached=4)[3:],
        step_op.params(), 3, True)),
]


@pytest.mark.parametrize("match,run", ENCODER_CASES + DECODER_CASES + STEP_CASES,
                         ids=["enc"] * len(ENCODER_CASES) + ["dec"] * len(DECODER_CASES)
                         + ["step"] * len(STEP_CASES))
def test_whole_layer_host_checks(match, run):
    with on_target(), pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
        run()
