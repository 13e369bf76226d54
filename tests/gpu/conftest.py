import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))  # numpy Philox reference

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("tests/gpu need a CUDA device", allow_module_level=True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
    yield
    torch.cuda.synchronize()  # surface asynchronous launch errors in the test that caused them
