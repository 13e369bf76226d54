"""The op library: built for this TensorFlow, with the GPU glue when CUDA was on,
and a clear refusal (not an undefined-symbol traceback) under another TF."""
import os
import re
import shutil
import subprocess

import pytest
import tensorflow as tf

from lightseq_tf import _build_info
from lightseq_tf.ops import _library


def test_built_for_the_running_tensorflow():
    assert _build_info.TF_VERSION == tf.__version__
    _library.check_tf_version(_build_info.TF_VERSION)  # no error


def test_other_tensorflow_version_gets_a_rebuild_message():
    with pytest.raises(_library.VersionMismatchError) as e:
        _library.check_tf_version("2.99.0", running="2.21.0")
    msg = str(e.value)
    assert "built for TensorFlow 2.99.0" in msg and "TensorFlow 2.21.0 is installed" in msg
    assert "pip install --no-build-isolation --force-reinstall" in msg


def test_patch_releases_are_compatible():
    _library.check_tf_version("2.21.0", running="2.21.3")


def test_missing_library_is_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(_library, "_PKG_DIR", str(tmp_path))
    with pytest.raises(ImportError, match="was\\s+not built"):
        _library.library_path()


@pytest.mark.skipif(not os.environ.get("LIGHTSEQ_TF_EXPECT_CUDA"),
                    reason="only where the build was asked to compile CUDA (CI does)")
def test_cuda_kernels_and_gpu_opkernels_are_linked_in():
    assert _build_info.CUDA_VERSION is not None and 90 in _build_info.CUDA_ARCHS
    with open(_library.library_path(), "rb") as f:
        blob = f.read()
    # The framework-free launcher and the GPU kernel registrations are present.
    assert b"_ZN8lightseq14layer_norm_fwd" in blob
    assert b"GPU" in blob and b"LightseqLayerNorm" in blob


# CI: "12.4" (the shipping build); "1": any CUDA version.
EXPECT_CUDA = os.environ.get("LIGHTSEQ_TF_EXPECT_CUDA")


@pytest.mark.skipif(EXPECT_CUDA in (None, "1"),
                    reason="only where the build was asked for one CUDA version (CI: 12.4)")
def test_built_with_the_expected_cuda_and_its_driver_floor():
    assert _build_info.CUDA_VERSION == EXPECT_CUDA
    major = int(EXPECT_CUDA.split(".")[0])
    assert (_build_info.CUDA_MIN_DRIVER, _build_info.CUDA_MIN_DRIVER_BRANCH) == {
        12: ("12.0", "R525"), 13: ("13.0", "R580")}[major]
    if major == 12:  # every target of TF 2.21's GPU build, and Hopper's
        assert _build_info.CUDA_ARCHS == [60, 70, 80, 89, 90] and _build_info.CUDA_PTX == 90


def cuobjdump():
    home = os.environ.get("LIGHTSEQ_TF_CUDA_HOME")
    found = os.path.join(home, "bin", "cuobjdump") if home else shutil.which("cuobjdump")
    return found if found and os.access(found, os.X_OK) else None


@pytest.mark.skipif(EXPECT_CUDA is None or cuobjdump() is None,
                    reason="a CUDA build and cuobjdump (LIGHTSEQ_TF_CUDA_HOME) needed")
def test_the_library_holds_the_recorded_sass_and_ptx():
    """_build_info says what the .so holds: each kernel file's SASS for every
    recorded target and PTX for the newest, nothing else."""
    lib = _library.library_path()
    def listed(what):
        out = subprocess.run([cuobjdump(), "--list-" + what, lib], capture_output=True, text=True,
                             check=True).stdout
        return sorted(int(a) for a in re.findall(r"\.sm_(\d+)\.", out)), out
    sass, out = listed("elf")
    archs = _build_info.CUDA_ARCHS
    files = len(sass) // len(archs)
    assert files >= 10 and sass == sorted(archs * files), out
    ptx, out = listed("ptx")
    assert ptx == [_build_info.CUDA_PTX] * files, out
