"""tests/tfgpu: TensorFlow's GPU build runs our OpKernels on /GPU:0, checked
against their CPU twins on the same inputs and seeds (and, where tests/cpu has
one, the same independent reference). Every module skips with the reason
where TensorFlow lists no GPU (CI); see target.py for the device override
that checks the tests' own logic CPU against CPU."""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
# tests/cpu's references and tolerances, tests/common's numpy Philox and Adam.
sys.path[:0] = [here, os.path.join(here, "..", "common"), os.path.join(here, "..", "cpu")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF takes all of a GPU's memory at its first op; these tests start further
# TensorFlow processes (tf_keras, determinism, NeurST), which would get none.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")



def pytest_configure(config):
    config.addinivalue_line("markers", "neurst: NeurST's CLI and own tests (subprocesses)")
    config.addinivalue_line("markers", "slow: takes more than ~20 s on the GPU machine; left "
                                       "out of the compute-sanitizer run")

