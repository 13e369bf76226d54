"""tf.distribute: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1, each equal
to one device on the whole batch (tests/cpu/distributed_check.py, own
processes: logical devices and TF_CONFIG must be set before TensorFlow starts)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ports import free_ports
from subprocess_env import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "distributed_check.py")


def env_for(legacy_keras, **extra):
    return subprocess_env(TF_USE_LEGACY_KERAS="1" if legacy_keras else "0", **extra)


@pytest.mark.parametrize("legacy_keras", [False, True], ids=["keras3", "tf_keras"])
def test_mirrored_strategy_equals_one_device(legacy_keras, tmp_path):
    r = subprocess.run([sys.executable, SCRIPT], env=env_for(legacy_keras), cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "DISTRIBUTED OK" in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]


def test_multi_worker_mirrored_strategy_equals_one_device(tmp_path):
    """Two worker processes (one replica each) over gRPC on 127.0.0.1; each is
    bounded by a timeout and killed if the other never joins."""
    cluster = {"worker": ["127.0.0.1:%d" % p for p in free_ports(2)]}
    workers = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        workers.append(subprocess.Popen(
            [sys.executable, SCRIPT, "worker", str(tmp_path / ("w%d.npz" % i))],
            env=env_for(False, TF_CONFIG=tf_config), cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for w in workers:
            outs.append(w.communicate(timeout=300))
    finally:
        for w in workers:
            w.kill()
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0 and "WORKER OK" in out, out[-2000:] + err[-4000:]
    r = subprocess.run([sys.executable, SCRIPT, "single", str(tmp_path / "s.npz"),
                        str(tmp_path / "w0.npz")], env=env_for(False), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "SINGLE OK" in r.stdout, r.stdout[-2000:] + r.stderr[-4000:]
    w0, w1, single = (np.load(tmp_path / n) for n in ("w0.npz", "w1.npz", "s.npz"))
    finals = sorted(f for f in w0.files if f.startswith("final_"))
    for f in finals:  # the two workers hold the same variables
        np.testing.assert_array_equal(w0[f], w1[f])
    np.testing.assert_allclose(w0["losses"], single["losses"], rtol=2e-5)
    for f in finals:
        np.testing.assert_allclose(w0[f], single[f], rtol=1e-4, atol=2e-5, err_msg=f)
