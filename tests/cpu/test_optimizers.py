"""LSAdam under Keras 3 (in-process) and tf_keras (a subprocess with
TF_USE_LEGACY_KERAS=1, since the Keras flavour is fixed at TF import)."""
import importlib.util
import os
import subprocess
import sys

import pytest

import optimizers_check as checks


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda c: c.__name__)
def test_keras3(check):
    check()


def test_exported():
    import lightseq_tf
    from lightseq_tf.optimizers import LSAdam
    assert lightseq_tf.LSAdam is LSAdam and "LSAdam" in lightseq_tf.__all__


@pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None, reason="tf_keras not installed")
def test_tf_keras():
    here = os.path.dirname(__file__)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(here, "..", "common"), here,
                                                    env.get("PYTHONPATH", "")) if p)
    r = subprocess.run([sys.executable, os.path.join(here, "optimizers_check.py")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "ALL OK keras 2." in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]
