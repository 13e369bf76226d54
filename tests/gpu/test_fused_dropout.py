"""Dropout family launchers vs PyTorch float64 references that use the
independent numpy Philox mask (tests/common/philox_ref.py): the GPU mask must
equal it bit for bit, which is also what the CPU twin is tested against.
Tolerances: relative L2, as in test_layer_norm.py."""
import numpy as np
import pytest
import torch

import ls_torch
import philox_ref

TOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SHAPES = [(1, 1), (3, 5), (7, 1023), (64, 1024), (33, 4096), (5, 3, 96)]


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def mask(seed, shape, rate):
    keep = philox_ref.keep_mask(seed, int(np.prod(shape)), rate).reshape(shape)
    return torch.from_numpy(keep).cuda()


def rand(shape, dtype, scale=1.0):
    return (torch.randn(shape, device="cuda") * scale).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(1000003,)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_dropout_mask_is_bitwise_the_reference(shape, dtype, rate):
    seed = 20261123
    x = (torch.rand(shape, device="cuda") + 0.5).to(dtype)  # no zeros: y != 0 <=> kept
    y = torch.full_like(x, float("nan"))
    ls_torch.dropout(x, rate, seed, out=y)
    keep = mask(seed, shape, rate)
    assert torch.equal(y != 0, keep)
    want = torch.where(keep, (x.float() * float(philox_ref.scale(rate))).to(dtype),
                       torch.zeros_like(x))
    assert torch.equal(y, want)


def test_dropout_unaligned_view_same_mask():
    x = torch.rand(4097, device="cuda") + 0.5
    xs = torch.empty(4098, device="cuda")[1:]
    xs.copy_(x)
    a = ls_torch.dropout(x, 0.3, 5)
    b = ls_torch.dropout(xs, 0.3, 5)
    assert torch.equal(a, b)


def test_keep_rate_within_binomial_bounds():
    n, rate = 1 << 22, 0.1
    y = ls_torch.dropout(torch.ones(n, device="cuda"), rate, 3)
    kept = (y != 0).double().mean().item()
    assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_bias_dropout_residual_matches_torch(shape, dtype, rate):
    seed = 77
    x, res, dy = rand(shape, dtype), rand(shape, dtype), rand(shape, dtype)
    b = rand(shape[-1:], dtype)
    y = ls_torch.bias_dropout_residual(x, b, res, rate, seed)
    dx, db = ls_torch.bias_dropout_residual_bwd(dy, rate, seed)
    m = mask(seed, shape, rate).double() * float(philox_ref.scale(rate))
    ry = res.double() + m * (x.double() + b.double())
    rdx = dy.double() * m
    rdb = rdx.reshape(-1, shape[-1]).sum(0)
    tol = TOL[dtype]
    assert rel(y, ry) < tol and rel(dx, rdx) < tol and rel(db, rdb) < tol


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(7, 1023), (64, 1024), (33, 4096)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_bias_grad_without_dx_is_the_same_dbias(shape, dtype, rate):
    """dx = null: dbias only (a projection's bias gradient), bit for bit the
    dbias of the full backward, and nothing written."""
    dy = rand(shape, dtype)
    _, want = ls_torch.bias_dropout_residual_bwd(dy, rate, 5)
    rows, h = dy.numel() // shape[-1], shape[-1]
    ws = torch.empty(max(1, ls_torch.lc.bias_dropout_residual_bwd_workspace_bytes(
        ls_torch.DTYPES[dtype], rows, h)), dtype=torch.uint8, device="cuda")
    db = torch.full((h,), float("nan"), device="cuda").to(dtype)
    ls_torch.lc.bias_dropout_residual_bwd(ls_torch.DTYPES[dtype], dy.data_ptr(), 0, db.data_ptr(),
                                          ws.data_ptr(), rows, h, 5, rate, ls_torch._stream())
    torch.cuda.synchronize()
    assert torch.equal(db, want)


@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_bias_act_dropout_matches_torch(shape, dtype, act, rate):
    seed = 99
    x, dy = rand(shape, dtype, 2.0), rand(shape, dtype)
    b = rand(shape[-1:], dtype)
    y = ls_torch.bias_act_dropout(x, b, rate, seed, act)
    dx, db = ls_torch.bias_act_dropout_bwd(dy, x, b, rate, seed, act)
    m = mask(seed, shape, rate).double() * float(philox_ref.scale(rate))
    xd, bd = x.double().requires_grad_(), b.double().requires_grad_()
    f = {"relu": torch.relu, "gelu": lambda z: torch.nn.functional.gelu(z),
         "gelu_tanh": lambda z: torch.nn.functional.gelu(z, approximate="tanh")}[act]
    ry = m * f(xd + bd)
    ry.backward(dy.double())
    tol = TOL[dtype]
    assert rel(y, ry.detach()) < tol
    assert rel(dx, xd.grad) < tol and rel(db, bd.grad) < tol


def test_backward_is_deterministic():
    x, dy = rand((4096, 1024), torch.float16), rand((4096, 1024), torch.float16)
    b = rand((1024,), torch.float16)
    first = ls_torch.bias_act_dropout_bwd(dy, x, b, 0.1, 1, "gelu")
    for _ in range(3):
        again = ls_torch.bias_act_dropout_bwd(dy, x, b, 0.1, 1, "gelu")
        assert all(torch.equal(a, c) for a, c in zip(first, again))


def test_empty_rows_give_zero_dbias():
    dy = torch.empty(0, 64, device="cuda")
    dx, db = ls_torch.bias_dropout_residual_bwd(dy, 0.1, 1)
    torch.cuda.synchronize()
    assert torch.equal(db, torch.zeros(64, device="cuda"))


@pytest.mark.parametrize("rate", [1.0, -0.5])
def test_rate_outside_range_is_rejected(rate):
    x = torch.ones(8, device="cuda")
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        ls_torch.dropout(x, rate, 1)


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh"])
def test_gelu_keeps_relative_accuracy_in_the_negative_tail(act):
    """Same check as tests/cpu: float32 result vs float64 math.erfc / exp."""
    import math
    z = torch.linspace(-8.0, 3.0, 224, device="cuda")
    zd = z.double().cpu().numpy()
    if act == "gelu":
        ref = [0.5 * v * math.erfc(-v / math.sqrt(2)) for v in zd]
    else:
        ref = [v / (1 + math.exp(-2 * math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))) for v in zd]
    y = ls_torch.bias_act_dropout(z[None, :], torch.zeros(224, device="cuda"), 0.0, 1, act)
    np.testing.assert_allclose(y[0].cpu().numpy(), np.array(ref), rtol=2e-5, atol=0)
