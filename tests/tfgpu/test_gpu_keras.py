"""The Keras layers and LSTransformer placed on the device under test, where
TensorFlow's automatic choice runs them as whole-layer and decoding-step ops:
tests/cpu's layer checks there (Keras 3 in this process, tf_keras in its
own); under mixed_float16 and mixed_bfloat16 a model learns a copy task with
fit, and its beam-1 and beam-4 generations there equal the CPU's tokens on
the same weights (the CPU composes its layers: two implementations must
agree); the exported generator reloads and runs there; XLA compilation
around our ops fails with a message naming the op, or works, and never
takes the process down."""
import target  # noqa: F401  (first: skips this module where TensorFlow lists no GPU)

import numpy as np
import pytest
import tensorflow as tf

import keras_layers_check
import lightseq_tf
import test_transformer_model as tm
from target import (assert_placed, on_cpu, on_target, run_check, run_checks_tf_keras,
                    run_train_check)
from test_encoder_layer import TOL


@pytest.mark.parametrize("check", keras_layers_check.CHECKS, ids=lambda c: c.__name__)
def test_layer_checks_keras3(check):
    run_check(check)


@pytest.mark.slow
def test_layer_checks_tf_keras():
    run_checks_tf_keras("keras_layers_check")


def copy_batch(rng, n=32):
    src, tin, tout = (np.zeros([n, w], np.int32) for w in (8, 9, 9))
    for i, length in enumerate(rng.integers(2, 7, n)):
        toks = rng.integers(3, tm.V, length)
        src[i, :length], tin[i, 0], tin[i, 1:length + 1] = toks, tm.BOS, toks
        tout[i, :length], tout[i, length] = toks, tm.EOS
    return src, tin, tout


@pytest.fixture(scope="module", params=["mixed_float16", "mixed_bfloat16"])
def trained(request):
    """A model fitted on the device under the policy (dropout on) until it
    copies: held-out loss < 0.02, as tests/cpu's copy task reaches."""
    policy = request.param
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    with on_target(strict=False):
        model = lightseq_tf.LSTransformer(
            tm.model_config(num_encoder_layer=1, num_decoder_layer=1, label_smoothing=0.0,
                            hidden_dropout_ratio=0.1), dtype=policy)
        model.compile(optimizer=lightseq_tf.LSAdam(3e-3), loss=model.loss_function)
        held_out = [tf.constant(t) for t in copy_batch(np.random.default_rng(1), 48)]
        losses = []  # held-out loss without dropout after each round of 50 steps
        for _ in range(30):  # converges in ~300-400 steps in float32 (tests/cpu)
            data = [copy_batch(rng) for _ in range(50)]
            src, tin, tout = (np.concatenate(x) for x in zip(*data))
            model.fit((src, tin), tout, batch_size=32, epochs=1, verbose=0)
            logits = model(tuple(held_out[:2]), training=False)
            losses.append(float(model.loss_function(held_out[2], logits)))
            if losses[-1] < 0.02:
                break
    yield policy, model, losses
    tf.keras.mixed_precision.set_global_policy("float32")


def test_fit_learns_under_mixed_precision(trained):
    policy, model, losses = trained
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.05, (policy, losses)
    with on_target(strict=False):
        logits = model((tf.ones([2, 3], tf.int32), tf.ones([2, 4], tf.int32)), training=False)
    assert logits.dtype == {"mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}[policy]
    assert_placed(logits)
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)


@pytest.mark.parametrize("beam", [1, 4])
def test_generate_on_the_device_equals_the_cpu_tokens(trained, beam):
    """The device decodes with the decoding-step op, the CPU with its
    composition, on the same weights: the same tokens, and scores within the
    policy's layer bound (tests/cpu/test_encoder_layer.TOL)."""
    policy, model, _ = trained
    src, _, want = copy_batch(np.random.default_rng(7), 16)
    src = tf.constant(src)
    with on_target(strict=False):
        ids, scores = model.generate(src, beam_size=beam)
    with on_cpu():
        cpu_ids, cpu_scores = model.generate(src, beam_size=beam)
    assert_placed(scores)
    np.testing.assert_array_equal(ids.numpy(), cpu_ids.numpy())
    np.testing.assert_allclose(scores.numpy(), cpu_scores.numpy(), rtol=TOL[policy],
                               atol=TOL[policy])
    width = ids.shape[1]
    np.testing.assert_array_equal(ids.numpy(), want[:, :width])  # and it copies


def test_exported_generator_reloads_and_runs_on_the_device(trained, tmp_path):
    _, model, _ = trained
    src = tf.constant(copy_batch(np.random.default_rng(8), 8)[0])
    with on_target(strict=False):
        want_ids, want_scores = model.generate(src, beam_size=4)
        model.export_generator(str(tmp_path / "gen"), beam_size=4)
        loaded = tf.saved_model.load(str(tmp_path / "gen"))
        out = loaded.signatures["serving_default"](src_ids=src)
    assert_placed(out["scores"])
    np.testing.assert_array_equal(out["ids"].numpy(), want_ids.numpy())
    np.testing.assert_allclose(out["scores"].numpy(), want_scores.numpy(), rtol=1e-6)


def test_xla_jit_compile_around_our_ops_fails_clearly_or_works():
    """README: our ops are not XLA-compilable. jit_compile=True must then
    fail with an error naming the op (not crash), and the device must work
    on afterwards; if TF ever compiles around them, the result must be right."""
    x = tf.random.stateless_normal([4, 64], [1, 1])
    g, b = tf.ones([64]), tf.zeros([64])
    with on_target():
        want = lightseq_tf.layer_norm(x, g, b)
        fn = tf.function(lambda x: lightseq_tf.layer_norm(x, g, b) * 2.0, jit_compile=True)
        try:
            got = fn(x)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.NotFoundError, tf.errors.InternalError) as e:
            assert "LightseqLayerNorm" in str(e), str(e)[:2000]
            print("jit_compile refused, as README says:", str(e).splitlines()[0][:300])
        else:
            np.testing.assert_allclose(got.numpy(), 2 * want.numpy(), rtol=1e-6, atol=1e-6)
        after = lightseq_tf.layer_norm(x, g, b)
    assert_placed(after)
    np.testing.assert_array_equal(after.numpy(), want.numpy())


@pytest.mark.slow
def test_xla_auto_clustering_around_our_ops_trains_the_same():
    """TF_XLA_FLAGS=--tf_xla_auto_jit=2 (what the benchmarks' native+XLA run
    uses) with our ops in the graph: XLA clusters TF's ops around ours, which
    stay TF ops; the same steps give the same losses as without XLA, to
    mixed_float16 rounding (dropout off: XLA draws random numbers its own
    way)."""
    plain = run_train_check("--dropout", "0", "--steps", "4")["runs"][0]["losses"]
    xla = run_train_check("--dropout", "0", "--steps", "4",
                          TF_XLA_FLAGS="--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit")
    losses = xla["runs"][0]["losses"]
    assert np.all(np.isfinite(losses))
    np.testing.assert_allclose(losses, plain, rtol=TOL["mixed_float16"])
