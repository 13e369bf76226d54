"""The op library: built for this TensorFlow, with the GPU glue when CUDA was on,
and a clear refusal (not an undefined-symbol traceback) under another TF."""
import os

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


@pytest.mark.skipif(os.environ.get("LIGHTSEQ_TF_EXPECT_CUDA") != "1",
                    reason="only where the build was asked to compile CUDA (CI does)")
def test_cuda_kernels_and_gpu_opkernels_are_linked_in():
    assert _build_info.CUDA_VERSION is not None and 90 in _build_info.CUDA_ARCHS
    with open(_library.library_path(), "rb") as f:
        blob = f.read()
    # The framework-free launcher and the GPU kernel registrations are present.
    assert b"_ZN8lightseq14layer_norm_fwd" in blob
    assert b"GPU" in blob and b"LightseqLayerNorm" in blob
