import gc
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))  # numpy Philox reference

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("tests/gpu need a CUDA device", allow_module_level=True)


@pytest.fixture(autouse=True, scope="session")
def _torch_warm_up():
    """PyTorch keeps a cuBLAS workspace per handle from its allocator once a
    matmul first runs; creating them before the first test keeps that
    one-time allocation out of the per-test baseline below. Not under the
    sanitizers (no baseline there): racecheck fails with a hardware
    exception inside cuBLAS's sm_90 half-precision GEMMs."""
    if os.environ.get("LIGHTSEQ_NO_MEMORY_BASELINE"):
        return
    for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        a = torch.ones(2, 16, 16, device="cuda", dtype=dt, requires_grad=True)
        y = (a @ a).sum() + (a[0] @ a[0]).sum() + torch.nn.functional.linear(a, a[0], a[0, 0]).sum()
        y = y + torch.baddbmm(a, a, a).sum() + torch.addmm(a[0], a[0], a[0]).sum()
        y.backward()
    torch.cuda.synchronize()


@pytest.fixture(autouse=True)
def _seed_and_memory_baseline():
    """Seeds torch, and checks that the device memory allocated through
    torch returns to its level before the test: the launchers allocate
    nothing (tests/cpu/test_cuda_source_rules.py), so growth would be a
    tensor kept alive by the harness wrappers. test_device_memory.py checks
    the driver-level side (memory taken outside torch). Off under
    compute-sanitizer (device_check.sh sets LIGHTSEQ_NO_MEMORY_BASELINE):
    its instrumentation changes torch's first-use allocations (seen: 3 MB
    held after the first test under memcheck only)."""
    torch.manual_seed(1234)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    yield
    torch.cuda.synchronize()  # surface asynchronous launch errors in the test that caused them
    if os.environ.get("LIGHTSEQ_NO_MEMORY_BASELINE"):
        return
    held = torch.cuda.memory_allocated() - before
    if held:  # a reference cycle may still hold tensors: collect it (slow, so only then)
        gc.collect()
        held = torch.cuda.memory_allocated() - before
    assert held == 0, f"{held} bytes of device memory still allocated after the test"
