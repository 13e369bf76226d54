"""LayerNorm launchers (cuda/kernels/layer_norm.cu) vs PyTorch in float64.

Tolerances are relative L2 errors ||out - ref|| / ||ref|| against a float64
reference computed from the same (rounded) inputs. Outputs are rounded to the
storage dtype once, so the error is dominated by that rounding (unit roundoff
u: fp32 6e-8, fp16 4.9e-4, bf16 3.9e-3); the bounds leave ~2-4x headroom over
u for the float32 arithmetic in between, not more.
"""
import pytest
import torch

import ls_torch

TOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (rows, hidden): tiny, odd, one-warp rows, block rows, multi-slot rows, max.
SHAPES = [(1, 1), (3, 3), (37, 64), (5, 255), (7, 1023), (64, 1024), (4, 1536),
          (3, 4097), (2, 8192), (3, 16384), (300, 512), (1000, 96)]


def rel(a, b):
    a = a.double()
    b = b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def make(rows, h, dtype, offset=3.0):
    # A non-zero mean makes the naive E[x^2]-E[x]^2 variance visibly wrong.
    x = (torch.randn(rows, h, device="cuda") * 2 + offset).to(dtype)
    g = (torch.rand(h, device="cuda") + 0.5).to(dtype)
    b = torch.randn(h, device="cuda").to(dtype)
    dy = torch.randn(rows, h, device="cuda").to(dtype)
    return x, g, b, dy


def reference(x, g, b, dy, eps):
    xd, gd, bd = (t.double().requires_grad_() for t in (x, g, b))
    y = torch.nn.functional.layer_norm(xd, (x.shape[-1],), gd, bd, eps)
    y.backward(dy.double())
    mean = xd.detach().mean(-1)
    rstd = 1 / torch.sqrt(xd.detach().var(-1, unbiased=False) + eps)
    return y.detach(), mean, rstd, xd.grad, gd.grad, bd.grad


def poisoned(*tensors):
    for t in tensors:
        t.fill_(float("nan"))
    return tensors


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,h", SHAPES)
def test_forward_backward_match_torch(rows, h, dtype):
    eps = 1e-5
    x, g, b, dy = make(rows, h, dtype)
    y, mean, rstd = ls_torch.layer_norm_fwd(
        x, g, b, eps, out=poisoned(torch.empty_like(x), torch.empty(rows, device="cuda"),
                                   torch.empty(rows, device="cuda")))
    dx, dg, db = ls_torch.layer_norm_bwd(
        dy, x, mean, rstd, g,
        out=poisoned(torch.empty_like(x), torch.empty_like(g), torch.empty_like(g)))
    torch.cuda.synchronize()
    ry, rmean, rrstd, rdx, rdg, rdb = reference(x, g, b, dy, eps)
    for name, t in dict(y=y, mean=mean, rstd=rstd, dx=dx, dgamma=dg, dbeta=db).items():
        assert torch.isfinite(t).all(), f"{name} has unwritten (NaN) elements"
    tol = TOL[dtype]
    assert rel(y, ry) < tol
    assert rel(mean, rmean) < 1e-6 and rel(rstd, rrstd) < 1e-5
    assert rel(dx, rdx) < tol
    assert rel(dg, rdg) < tol
    assert rel(db, rdb) < tol


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,h", [(37, 64), (7, 1023), (64, 1024), (3, 16384), (1000, 96)])
@pytest.mark.parametrize("in_place", [False, True], ids=["dx_add", "dx_add_is_dx"])
def test_backward_adds_dx_add(rows, h, dtype, in_place):
    """dx = LN'(dy) + dx_add in one pass (a pre-LN block's residual
    gradient), also when dx_add is dx's own buffer."""
    eps = 1e-5
    x, g, b, dy = make(rows, h, dtype)
    _, mean, rstd = ls_torch.layer_norm_fwd(x, g, b, eps)
    add = torch.randn(rows, h, device="cuda").to(dtype)
    out = add.clone() if in_place else poisoned(torch.empty_like(x))[0]
    dx, dg, db = ls_torch.layer_norm_bwd(
        dy, x, mean, rstd, g, out=(out, torch.empty_like(g), torch.empty_like(g)),
        dx_add=out if in_place else add)
    torch.cuda.synchronize()
    _, _, _, rdx, rdg, rdb = reference(x, g, b, dy, eps)
    tol = TOL[dtype]
    assert rel(dx, rdx + add.double()) < tol
    assert rel(dg, rdg) < tol and rel(db, rdb) < tol


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_unaligned_views_take_the_scalar_path(dtype):
    # Offsetting by one element breaks 16-byte alignment: results must not change.
    rows, h, eps = 33, 1024, 1e-6
    x, g, b, dy = make(rows, h, dtype)
    xs = torch.empty(rows * h + 1, dtype=dtype, device="cuda")[1:].view(rows, h)
    xs.copy_(x)
    ya, ma, ra = ls_torch.layer_norm_fwd(x, g, b, eps)
    yb = torch.empty(rows * h + 1, dtype=dtype, device="cuda")[1:].view(rows, h)
    ls_torch.layer_norm_fwd(xs, g, b, eps, out=(yb, torch.empty_like(ma), torch.empty_like(ra)))
    dxa, dga, dba = ls_torch.layer_norm_bwd(dy, x, ma, ra, g)
    dxb, dgb, dbb = ls_torch.layer_norm_bwd(dy, xs, ma, ra, g)
    torch.cuda.synchronize()
    tol = TOL[dtype]
    assert rel(yb, ya) < tol and rel(dxb, dxa) < tol
    assert rel(dgb, dga) < tol and rel(dbb, dba) < tol


def test_backward_is_deterministic():
    x, g, b, dy = make(4096, 1024, torch.float16)
    y, m, r = ls_torch.layer_norm_fwd(x, g, b, 1e-5)
    first = ls_torch.layer_norm_bwd(dy, x, m, r, g)
    for _ in range(3):
        again = ls_torch.layer_norm_bwd(dy, x, m, r, g)
        for a, c in zip(first, again):
            assert torch.equal(a, c)


def test_empty_batch_gives_zero_param_grads():
    g = torch.rand(64, device="cuda")
    x = torch.empty(0, 64, device="cuda")
    y, m, r = ls_torch.layer_norm_fwd(x, g, g, 1e-5)
    dx, dg, db = ls_torch.layer_norm_bwd(x, x, m, r, g,
                                         out=poisoned(torch.empty_like(x), torch.empty_like(g),
                                                      torch.empty_like(g)))
    torch.cuda.synchronize()
    assert y.shape == (0, 64)
    assert torch.equal(dg, torch.zeros_like(g)) and torch.equal(db, torch.zeros_like(g))


@pytest.mark.parametrize("h", [0, ls_torch.lc.LAYER_NORM_MAX_HIDDEN + 1])
def test_hidden_outside_limits_is_rejected(h):
    x = torch.empty(2, max(h, 1), device="cuda")
    m = torch.empty(2, device="cuda")
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        ls_torch.lc.layer_norm_fwd(ls_torch.lc.FLOAT32, x.data_ptr(), x.data_ptr(), x.data_ptr(),
                                   x.data_ptr(), m.data_ptr(), m.data_ptr(), 2, h, 1e-5,
                                   torch.cuda.current_stream().cuda_stream)


def test_non_positive_epsilon_is_rejected():
    x = torch.randn(2, 8, device="cuda")
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        ls_torch.layer_norm_fwd(x, x[0], x[0], 0.0)


def test_repeated_calls_hold_device_memory_steady():
    # The launchers allocate nothing; the caller-owned workspace is reused.
    x, g, b, dy = make(512, 1024, torch.float16)
    ws = ls_torch.layer_norm_bwd_workspace(x)
    outs = (torch.empty_like(x), torch.empty(512, device="cuda"), torch.empty(512, device="cuda"))
    grads = (torch.empty_like(x), torch.empty_like(g), torch.empty_like(g))
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(50):
        ls_torch.layer_norm_fwd(x, g, b, 1e-5, out=outs)
        ls_torch.layer_norm_bwd(dy, x, outs[1], outs[2], g, workspace=ws, out=grads)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before
