"""Loads the op library once, after checking it was built for this TensorFlow
(and, for a CUDA build, that the NVIDIA driver is new enough: _driver.py).

A custom-op library is tied to the exact TensorFlow ABI it was compiled
against; loading it under another version fails deep inside the dynamic
linker ("undefined symbol: _ZN10tensorflow..."). We record the version at
build time and refuse early with a message that says what to do.
"""
import glob
import os
import threading

import tensorflow as tf

from lightseq_tf.ops import _driver

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_lock = threading.Lock()
_ops = None


class VersionMismatchError(ImportError):
    pass


def _major_minor(version):
    return tuple(version.split(".")[:2])


def check_tf_version(built_for, running=None):
    running = running or tf.__version__
    if _major_minor(built_for) != _major_minor(running):
        raise VersionMismatchError(
            "lightseq_tf's op library was built for TensorFlow %s, but TensorFlow %s is "
            "installed. Rebuild lightseq_tf against the installed TensorFlow, from its source "
            "checkout or sdist: pip install --no-build-isolation --force-reinstall --no-deps <path>"
            % (built_for, running))


def _check_at_import():
    """Refuse at `import lightseq_tf`, not at the first op call, when the
    library was built for another TensorFlow or the driver is too old for its
    CUDA code (an unbuilt tree is reported by ops() instead, so build tools
    can still import the package)."""
    try:
        from lightseq_tf import _build_info
    except ImportError:
        return
    check_tf_version(_build_info.TF_VERSION)
    _driver.check(_build_info)


def build_info():
    """What the op library was built with: TensorFlow version, CUDA version,
    SASS / PTX targets, the driver it needs (None / [] for a CPU-only build)."""
    from lightseq_tf import _build_info
    return {k.lower(): v for k, v in vars(_build_info).items() if k.isupper()}


def library_path():
    found = sorted(glob.glob(os.path.join(_PKG_DIR, "_lightseq_ops*.so")))
    if not found:
        raise ImportError(
            "lightseq_tf's op library (_lightseq_ops*.so) is missing from %s: the package was "
            "not built. Install with pip install --no-build-isolation . (or run "
            "python -m build_tools.build --inplace in a source checkout)." % _PKG_DIR)
    return found[0]


def ops():
    """The loaded op module (generated Python wrappers for our ops)."""
    global _ops
    if _ops is None:
        with _lock:
            if _ops is None:
                # The TF version was checked when this module was imported.
                _ops = tf.load_op_library(library_path())
    return _ops


_check_at_import()
