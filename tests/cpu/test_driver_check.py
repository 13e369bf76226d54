"""The NVIDIA driver check at import (lightseq_tf/ops/_driver.py): the decision
with injected versions, the driver read through a stand-in libcuda.so.1, and
the whole import path in a fresh process."""
import subprocess
import sys
import textwrap
import types

import pytest
from subprocess_env import subprocess_env

from lightseq_tf import _build_info
from lightseq_tf.ops import _driver


def never_asked():
    raise AssertionError("TensorFlow's GPU list must not be asked when the driver is new enough")


@pytest.mark.parametrize("found", [(12, 0), (12, 2), (12, 8), (13, 0)])
def test_driver_new_enough_passes_without_asking_for_gpus(found):
    _driver.check_driver("12.4", "12.0", "R525", found, never_asked)


@pytest.mark.parametrize("needed, found", [(None, (11, 0)), ("12.0", None), (None, None)])
def test_cpu_only_build_or_no_driver_checks_nothing(needed, found):
    _driver.check_driver("12.4" if needed else None, needed, "R525", found, never_asked)


def test_old_driver_without_a_visible_gpu_is_fine():
    # TensorFlow then places every op on the CPU, where the twins run.
    _driver.check_driver("13.0", "13.0", "R580", (12, 8), lambda: False)


def test_cuda12_build_on_a_cuda11_driver_names_both_versions_and_the_upgrade():
    with pytest.raises(_driver.DriverTooOldError) as e:
        _driver.check_driver("12.4", "12.0", "R525", (11, 8), lambda: True)
    msg = str(e.value)
    assert "built with CUDA 12.4" in msg and "supports CUDA 12.0 or newer (R525+)" in msg
    assert "driver supports CUDA 11.8" in msg and "upgrade the NVIDIA driver to R525" in msg
    assert "CUDA_VISIBLE_DEVICES" in msg
    assert "wheel built with CUDA 12" not in msg  # it is that wheel already
    assert isinstance(e.value, ImportError)


def test_cuda13_build_on_an_r570_driver_points_to_the_cuda12_wheel():
    with pytest.raises(_driver.DriverTooOldError) as e:
        _driver.check_driver("13.0", "13.0", "R580", (12, 8), lambda: True)
    msg = str(e.value)
    assert "built with CUDA 13.0" in msg and "CUDA 13.0 or newer (R580+)" in msg
    assert "driver supports CUDA 12.8" in msg
    assert "wheel built with CUDA 12" in msg and "build_tools/make_wheel.sh" in msg
    assert "upgrade the NVIDIA driver to R580" in msg


def test_minor_versions_count():
    with pytest.raises(_driver.DriverTooOldError):
        _driver.check_driver("12.4", "12.4", "R550", (12, 2), lambda: True)
    _driver.check_driver("12.4", "12.4", "R550", (12, 4), never_asked)


def test_check_reads_the_build_info():
    cpu_only = types.SimpleNamespace(CUDA_VERSION=None, CUDA_MIN_DRIVER=None)
    _driver.check(cpu_only, driver=never_asked, gpus_visible=never_asked)
    cuda13 = types.SimpleNamespace(CUDA_VERSION="13.0", CUDA_MIN_DRIVER="13.0",
                                   CUDA_MIN_DRIVER_BRANCH="R580")
    with pytest.raises(_driver.DriverTooOldError, match="R580"):
        _driver.check(cuda13, driver=lambda: (12, 4), gpus_visible=lambda: True)


def fake_libcuda(tmp_path, body):
    """A stand-in for the driver library exporting cuDriverGetVersion."""
    src = tmp_path / "fake_cuda.c"
    src.write_text("int cuDriverGetVersion(int* v) { %s }\n" % body)
    lib = tmp_path / "libcuda.so.1"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_driver_version_read_through_the_driver_library(tmp_path):
    assert _driver.driver_cuda_version(str(fake_libcuda(tmp_path, "*v = 12020; return 0;"))) == (12, 2)


def test_driver_library_errors_and_absence_read_as_no_driver(tmp_path):
    assert _driver.driver_cuda_version(str(tmp_path / "missing" / "libcuda.so.1")) is None
    # CUDA_ERROR_NO_DEVICE-style failure: no version to compare.
    assert _driver.driver_cuda_version(str(fake_libcuda(tmp_path, "*v = 0; return 100;"))) is None
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.c").write_text("int unrelated(void) { return 0; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(other / "libx.so"), str(other / "x.c")],
                   check=True)
    assert _driver.driver_cuda_version(str(other / "libx.so")) is None


def run_with_driver(tmp_path, version, script):
    lib = fake_libcuda(tmp_path, "*v = %d; return 0;" % version)
    env = subprocess_env(LD_LIBRARY_PATH=str(lib.parent), TF_CPP_MIN_LOG_LEVEL="3")
    # cwd: `python -c` puts it first on sys.path, before PYTHONPATH; the
    # source tree there would shadow the installed package (CI).
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(getattr(_build_info, "CUDA_MIN_DRIVER", None) is None,
                    reason="a CPU-only build checks no driver")
def test_import_with_an_old_driver(tmp_path):
    """One process, the real import path: the driver (a stand-in reporting
    CUDA 11.0 through libcuda.so.1) is too old. Without a visible GPU the
    CPU ops work; with TensorFlow seeing a GPU, `import lightseq_tf` raises
    DriverTooOldError naming both versions."""
    p = run_with_driver(tmp_path, 11000, """
        import tensorflow as tf
        import lightseq_tf
        x = tf.ones([2, 4])
        print(float(tf.reduce_sum(lightseq_tf.layer_norm(x, tf.ones([4]), tf.zeros([4])))))
    """)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == "0.0"
    p = run_with_driver(tmp_path, 11000, """
        import tensorflow as tf
        gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
        cpu_list = tf.config.list_physical_devices
        tf.config.list_physical_devices = lambda t=None: [gpu] if t == "GPU" else cpu_list(t)
        try:
            import lightseq_tf
        except ImportError as e:
            print("REFUSED:", type(e).__name__, e)
    """)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "REFUSED: DriverTooOldError" in p.stdout, p.stdout
    assert "driver supports CUDA 11.0" in p.stdout
    assert "CUDA %s or newer" % _build_info.CUDA_MIN_DRIVER in p.stdout
