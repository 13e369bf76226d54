"""Embedding launchers vs a PyTorch float64 reference (NeurST sinusoid,
numpy Philox mask), determinism, and out-of-range ids."""
import math

import numpy as np
import pytest
import torch

import embedding_ref
import ls_torch
import philox_ref

TOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DTYPES = [(torch.float32, torch.float32), (torch.float16, torch.float32),
          (torch.float16, torch.float16), (torch.bfloat16, torch.float32),
          (torch.bfloat16, torch.bfloat16)]


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def signal(length, channels, time):
    """NeurST's add_sinusoids_timing_signal, float32 like its graph."""
    pos = torch.arange(time, time + length, dtype=torch.float32, device="cuda")
    n = channels // 2
    log_inc = torch.tensor(math.log(1.0e4), dtype=torch.float32) / (n - 1)
    inv = torch.exp(torch.arange(n, dtype=torch.float32) * -log_inc).cuda()
    scaled = pos[:, None] * inv[None, :]
    sig = torch.cat([torch.sin(scaled), torch.cos(scaled)], 1)
    return torch.nn.functional.pad(sig, (0, channels % 2))


def reference(ids, table, dy, scale, offset, pad, rate, seed):
    hidden = table.shape[1]
    length = ids.shape[-1] if ids.dim() >= 2 else 1
    sig = signal(length, hidden, offset).double()
    if ids.dim() == 1:
        sig = sig[0]
    keep = philox_ref.keep_mask(seed, ids.numel() * hidden, rate).reshape(tuple(ids.shape) + (hidden,))
    m = torch.from_numpy(keep.astype(np.float64) * float(philox_ref.scale(rate))).cuda()
    valid = (ids != pad).double()[..., None]
    t = table.double().requires_grad_()
    y = m * valid * (float(np.float32(scale)) * t[ids.long()] + sig)
    y.backward(dy.double())
    return y.detach(), t.grad


@pytest.mark.parametrize("dtype,table_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,hidden,vocab", [((3, 7), 8, 11), ((2, 5), 13, 11),
                                                ((64,), 64, 50), ((8, 33), 1024, 32000),
                                                ((16, 64), 512, 7), ((2, 9), 2056, 100)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.1])
@pytest.mark.parametrize("pad", [-1, 1])
def test_matches_reference(shape, hidden, vocab, dtype, table_dtype, rate, pad):
    ids = torch.randint(0, vocab, shape, device="cuda", dtype=torch.int32)
    table = torch.randn(vocab, hidden, device="cuda").to(table_dtype)
    dy = torch.randn(tuple(shape) + (hidden,), device="cuda").to(dtype)
    offset = 3 if len(shape) == 1 else 0
    scale = hidden ** 0.5
    y = ls_torch.embedding_fwd(ids, table, scale, pos_offset=offset, padding_id=pad, seed=77,
                               rate=rate, dtype=dtype)
    dt = torch.full((vocab, hidden), float("nan"), device="cuda").to(table_dtype)
    ls_torch.embedding_bwd(dy, ids, vocab, table_dtype, scale, pad, 77, rate, out=dt)
    ry, rdt = reference(ids, table, dy, scale, offset, pad, rate, 77)
    torch.cuda.synchronize()
    assert rel(y, ry) < TOL[dtype]
    assert rel(dt, rdt) < TOL[table_dtype]
    if pad >= 0:
        assert torch.all(dt[pad] == 0)


@pytest.mark.parametrize("hidden", [96, 13, 2056])
def test_gradient_is_deterministic_with_heavy_repeats(hidden):
    # Zipf-like ids: a few ids take most tokens (long runs for one block).
    ids = torch.randint(0, 3, (4096,), device="cuda", dtype=torch.int64)
    ids[::7] = torch.randint(0, 5000, (586,), device="cuda")
    dy = torch.randn(4096, hidden, device="cuda", dtype=torch.float16)
    a = ls_torch.embedding_bwd(dy, ids[None], 5000, torch.float32, 2.0, seed=3, rate=0.2)
    for _ in range(3):
        b = ls_torch.embedding_bwd(dy, ids[None], 5000, torch.float32, 2.0, seed=3, rate=0.2)
        assert torch.equal(a, b)
    table = torch.zeros(5000, hidden, device="cuda")
    _, ref = reference(ids[None], table, dy[None], 2.0, 0, -1, 0.2, 3)
    assert rel(a, ref) < 1e-5


def test_incremental_step_equals_full_sequence():
    ids = torch.randint(0, 100, (4, 12), device="cuda", dtype=torch.int32)
    table = torch.randn(100, 64, device="cuda")
    full = ls_torch.embedding_fwd(ids, table, 8.0)
    for t in range(12):
        step = ls_torch.embedding_fwd(ids[:, t].contiguous(), table, 8.0, pos_offset=t)
        assert torch.equal(step, full[:, t])


@pytest.mark.parametrize("ids_dtype", [torch.int32, torch.int64], ids=str)
def test_out_of_range_ids_are_flagged_and_never_read(ids_dtype):
    table = torch.randn(10, 64, device="cuda")
    ids = torch.tensor([[1, 2, 3], [-4, 5, 10]], device="cuda", dtype=ids_dtype)
    bad = torch.full((1,), -1, dtype=torch.int64, device="cuda")  # = NO_BAD_INDEX bits
    y = ls_torch.embedding_fwd(ids, table, 1.0, positions=False, bad_index=bad)
    torch.cuda.synchronize()
    assert bad.item() == 3  # the first bad token (flat index)
    assert torch.all(y[1, 0] == 0) and torch.all(y[1, 2] == 0)
    assert torch.equal(y[0], table[ids[0].long()])
    dt = ls_torch.embedding_bwd(torch.ones_like(y), ids, 10, torch.float32, 1.0)
    assert dt.sum().item() == 64 * 4  # only the four valid tokens
    ok = torch.full((1,), -1, dtype=torch.int64, device="cuda")
    ls_torch.embedding_fwd(ids.clamp(0, 9), table, 1.0, bad_index=ok)
    assert ok.item() == -1


def test_gradient_order_bit_for_bit():
    """fp32 dtable equals a float32 replay of the kernels' summation order
    exactly (tests/cpu checks the CPU twin against the same replay)."""
    # id 0 spans several 16-position chunks of the sorted ids; ids 1-4 start mid-chunk.
    ids = torch.from_numpy(np.random.RandomState(3).choice(5, (2, 150), p=[.7, .1, .1, .05, .05])
                           ).int().cuda()
    dy = torch.randn(2, 150, 16, device="cuda")
    got = ls_torch.embedding_bwd(dy, ids, 5, torch.float32, 1.5, seed=8, rate=0.3)
    want = embedding_ref.grad_in_kernel_order(ids.cpu().numpy(), dy.cpu().numpy(), 5, 1.5, 0.3, 8)
    np.testing.assert_array_equal(got.cpu().numpy(), want)
