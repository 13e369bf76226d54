"""The device under test and the two sides every tests/tfgpu check compares.

DEVICE is /GPU:0, or LIGHTSEQ_TFGPU_DEVICE when set: LIGHTSEQ_TFGPU_DEVICE=/CPU:0
runs the "GPU" side on the CPU, which checks the tests' own logic (every
comparison, placement assertion and error case) on a machine without a GPU.
It proves nothing about the GPU path. Without the override, a machine where
TensorFlow lists no GPU skips every module that imports this one, naming why.

on_target() is the GPU side: ops placed on DEVICE (with soft placement off,
an op without a kernel there fails instead of running on the CPU), and the
Keras layers on the path TF's automatic choice takes on a GPU (whole-layer
and decoding-step ops). on_cpu() is the CPU twin's side: /CPU:0 and the
layers' CPU path (composed around TF's MatMul).
"""
import contextlib
import os

import numpy as np
import pytest
import tensorflow as tf

DEVICE = os.environ.get("LIGHTSEQ_TFGPU_DEVICE", "/GPU:0")
OVERRIDDEN = "LIGHTSEQ_TFGPU_DEVICE" in os.environ
CPU = "/CPU:0"

if not OVERRIDDEN and not tf.config.list_physical_devices("GPU"):
    pytest.skip("TensorFlow lists no GPU (tf.config.list_physical_devices('GPU') is empty; "
                "TF %s built with CUDA %s): tests/tfgpu runs TF's GPU build on a GPU "
                "(build_tools/tf_gpu_check.sh). LIGHTSEQ_TFGPU_DEVICE=/CPU:0 checks the tests' "
                "logic CPU against CPU." % (tf.__version__,
                                            tf.sysconfig.get_build_info().get("cuda_version")),
                allow_module_level=True)

DEVICE_TYPE = tf.DeviceSpec.from_string(DEVICE).device_type
ON_GPU = DEVICE_TYPE == "GPU"
# fp32 is compared at the CPU tests' fp32 bounds: TF's TF32 GEMMs (on by
# default from Ampere on, and followed by our whole-layer ops' BLAS calls)
# keep 10 mantissa bits, so they are off here; test_gpu_whole_layers checks
# that the setting reaches our ops.
tf.config.experimental.enable_tensor_float_32_execution(False)

import lightseq_tf  # noqa: E402
from lightseq_tf.layers import _transformer  # noqa: E402


def _our_kernels():
    from tensorflow.python.framework import kernels
    lightseq_tf.ops._library.ops()  # loaded
    return [k for k in kernels.get_all_registered_kernels().kernel if k.op.startswith("Lightseq")]


def our_op_types():
    """Every op type our library registers a kernel for (LightseqLayerNorm, ...)."""
    return sorted({k.op for k in _our_kernels()})


def op_types_without_kernel(device_type=DEVICE_TYPE):
    kernels = _our_kernels()
    return [op for op in our_op_types()
            if device_type not in {k.device_type for k in kernels if k.op == op}]


@contextlib.contextmanager
def _side(device, whole_layer_op, strict):
    before_path = _transformer.TransformerLayerBase.whole_layer_op
    before_soft = tf.config.get_soft_device_placement()
    _transformer.TransformerLayerBase.whole_layer_op = whole_layer_op
    if strict:
        tf.config.set_soft_device_placement(False)
    try:
        with tf.device(device):
            yield
    finally:
        _transformer.TransformerLayerBase.whole_layer_op = before_path
        tf.config.set_soft_device_placement(before_soft)


def on_target(strict=True):
    """Context: the device under test. strict=False lets TF place what has no
    kernel there elsewhere (Keras' own bookkeeping ops in fit and saving)."""
    return _side(DEVICE, "always", strict)


def on_cpu():
    return _side(CPU, "never", False)


def both(fn, *args, **kwargs):
    """(fn on the target, fn on the CPU twin), each traced/run inside its side."""
    with on_target():
        got = fn(*args, **kwargs)
    with on_cpu():
        ref = fn(*args, **kwargs)
    return got, ref


def assert_placed(*tensors):
    """Each eager tensor lives on the device under test."""
    for t in tf.nest.flatten(tensors):
        if t is None or not hasattr(t, "device"):
            continue
        assert tf.DeviceSpec.from_string(t.device).device_type == DEVICE_TYPE, t.device


def f32(t):
    return np.asarray(tf.cast(t, tf.float32) if tf.is_tensor(t) else t, np.float32)


def assert_same_zeros(got, ref, what=""):
    """Dropout (and masking) decided the same elements on both sides: the zero
    patterns are identical (inputs are drawn so that a kept element is never
    zero)."""
    z_got, z_ref = f32(got) == 0, f32(ref) == 0
    assert z_got.shape == z_ref.shape, what
    bad = np.flatnonzero(z_got != z_ref)
    assert bad.size == 0, "%s: %d elements dropped on one side only, first at %d" % (
        what, bad.size, bad[0])


def assert_bits_equal(got, ref, what=""):
    a, b = np.asarray(f32(got)), np.asarray(f32(ref))
    assert a.shape == b.shape, (what, a.shape, b.shape)
    bad = np.flatnonzero(a.view(np.uint32) != b.view(np.uint32))
    assert bad.size == 0, "%s: %d elements differ, first at %d: %r vs %r" % (
        what, bad.size, bad[0], a.flat[bad[0]], b.flat[bad[0]])


def run_train_check(*args, **env):
    """tests/tfgpu/train_check.py in its own process (op determinism and XLA
    auto-clustering are process-wide); its JSON result."""
    import json
    import subprocess
    import sys

    from subprocess_env import subprocess_env
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_check.py")
    r = subprocess.run([sys.executable, script] + list(args), env=subprocess_env(**env),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["device"] == DEVICE, out
    return out


def run_check(check):
    """One of tests/cpu's layer / optimizer checks on the device under test
    (Keras keeps some bookkeeping on the host: soft placement on)."""
    try:
        with on_target(strict=False):
            check()
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def run_checks_tf_keras(module):
    """A check module's CHECKS under tf_keras, in its own process
    (check_runner.py): the Keras flavour is fixed when TF is first imported."""
    import subprocess
    import sys

    from subprocess_env import subprocess_env
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_runner.py")
    r = subprocess.run([sys.executable, script, module], env=subprocess_env(
        TF_USE_LEGACY_KERAS="1"), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "ALL OK keras 2." in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]
