"""tf.distribute: MirroredStrategy over two logical CPU devices equals one
device on the whole batch (tests/cpu/distributed_check.py, own process)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("legacy_keras", [False, True], ids=["keras3", "tf_keras"])
def test_mirrored_strategy_equals_one_device(legacy_keras):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(HERE))] + sys.path))
    env["TF_USE_LEGACY_KERAS"] = "1" if legacy_keras else "0"
    r = subprocess.run([sys.executable, os.path.join(HERE, "distributed_check.py")], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "DISTRIBUTED OK" in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]
