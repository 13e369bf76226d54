"""multi_tensor_adam and LSAdam on variables that live on the device under
test, under TensorFlow's resource-variable locking: tests/cpu's bit-exact
checks against the numpy step (tests/common/adam_ref.py) run there as they
are; LSAdam's step there equals its step on the CPU bit for bit (float32 and
float16 gradients, loss scaling with a skipped overflow step); and
tf.config.experimental.enable_op_determinism() gives bit-identical training
runs of a whole model."""
import target  # noqa: F401  (first: skips this module where TensorFlow lists no GPU)

import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
import optimizers_check
import test_adam as adam_t
import test_loss_scaling as ls_t
from target import (assert_bits_equal, assert_placed, on_cpu, on_target, run_check,
                    run_checks_tf_keras, run_train_check)


def test_variables_live_on_the_device():
    with on_target():
        v = tf.Variable(tf.zeros([3]))
    assert_placed(v.handle, v.read_value())


@pytest.mark.parametrize("dtype", adam_t.GRAD_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
@pytest.mark.parametrize("grad_scale", [1.0, 1024.0])
def test_bit_exact_vs_numpy_over_steps(dtype, adamw, grad_scale):
    with on_target():
        adam_t.test_bit_exact_vs_numpy_over_steps(dtype, adamw, 0.01, grad_scale)


@pytest.mark.parametrize("check", [
    adam_t.test_weight_decay_modes_differ_and_decay_applies,
    adam_t.test_denormal_moments_are_kept_like_numpy,
    adam_t.test_found_inf_skips_everything_bit_identical,
    adam_t.test_many_tensors_under_tf_function_with_variable_step,
    adam_t.test_mixed_grad_dtypes_one_call,
    adam_t.test_indexed_slices_grad_is_applied_densely,
    adam_t.test_keras_variables_are_accepted,
    adam_t.test_readers_keep_their_value_copy_on_write,
    adam_t.test_no_gradient_registered,
], ids=lambda f: f.__name__)
def test_cpu_checks_on_the_device(check):
    """found_inf is read on the device (no host sync): the skip must hold there."""
    with on_target():
        check()


def _lsadam_steps(side, grad_dtype, steps=4):
    """LSAdam (Keras' slots, epsilon conversion) over variables on one side,
    fed the same gradients; returns the weights and slots."""
    shapes = [(7,), (33, 5), (1000,), (4, 3, 2)]
    init = [np.random.default_rng(i).standard_normal(s).astype(np.float32)
            for i, s in enumerate(shapes)]
    with side():
        variables = [tf.Variable(a) for a in init]
        opt = lightseq_tf.LSAdam(learning_rate=1e-2, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
        opt.build(variables)
        step = tf.function(lambda gs: opt.apply_gradients(zip(gs, variables)))
        for k in range(steps):
            rng = np.random.default_rng(100 + k)
            step([tf.cast(rng.standard_normal(s).astype(np.float32), grad_dtype) for s in shapes])
    assert optimizers_check.FUSED_OP in optimizers_check.graph_op_types(step, [
        tf.zeros(s, grad_dtype) for s in shapes])
    return variables, [v for v in opt.variables if v.shape.rank]


@pytest.mark.parametrize("grad_dtype", [tf.float32, tf.float16, tf.bfloat16], ids=lambda d: d.name)
def test_lsadam_step_on_the_device_equals_the_cpu_step(grad_dtype):
    got, got_slots = _lsadam_steps(on_target, grad_dtype)
    ref, ref_slots = _lsadam_steps(on_cpu, grad_dtype)
    assert_placed([v.handle for v in got])
    for i, (a, b) in enumerate(zip(got + got_slots, ref + ref_slots)):
        assert_bits_equal(a, b, "variable/slot %d" % i)


def test_mixed_float16_loss_scaling_skips_the_overflow_step():
    """tests/cpu/test_loss_scaling: a mixed_float16 LSTransformer under
    Keras' LossScaleOptimizer around LSAdam; an overflowing step is skipped
    (found_inf read on the device), the scale halves, training recovers."""
    with on_target(strict=False):
        ls_t.test_overflow_step_is_skipped_and_training_recovers()
    tf.keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("check", optimizers_check.CHECKS, ids=lambda c: c.__name__)
def test_lsadam_checks_keras3(check):
    run_check(check)


@pytest.mark.slow
def test_lsadam_checks_tf_keras():
    run_checks_tf_keras("optimizers_check")


@pytest.mark.slow
def test_op_determinism_gives_bit_identical_runs():
    """enable_op_determinism (process-wide and irreversible, hence its own
    process): two training runs of a whole LSTransformer with dropout, from
    the same seed, end with bit-identical losses and weights; no op of ours is
    refused as nondeterministic."""
    out = run_train_check("--determinism", "--runs", "2", "--dropout", "0.1")
    a, b = out["runs"]
    assert a == b, (a, b)
    assert a["losses"][-1] < a["losses"][0], a  # it trained
