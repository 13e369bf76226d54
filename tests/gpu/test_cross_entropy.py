"""Cross-entropy launchers vs a PyTorch float64 reference (soft-target form)."""
import pytest
import torch

import ls_torch

TOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def reference(logits, targets, eps, pad, gl, gn):
    z = logits.double().requires_grad_()
    v = z.shape[-1]
    logp = torch.log_softmax(z, -1)
    keep = (targets != pad).double()
    t = torch.where(targets == pad, torch.zeros_like(targets), targets)
    q = torch.full_like(logp, eps / (v - 1) if v > 1 else 0.0)
    q.scatter_(-1, t[..., None], 1 - eps)
    loss = -(q * logp).sum(-1) * keep
    nll = -logp.gather(-1, t[..., None])[..., 0] * keep
    (loss * gl.double() + nll * gn.double()).sum().backward()
    return loss.detach(), nll.detach(), z.grad, keep.sum()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,vocab", [(1, 2), (7, 33), (64, 1000), (33, 32000), (4, 256003),
                                        (300, 512)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("tidx", [torch.int32, torch.int64], ids=str)
def test_matches_torch(rows, vocab, dtype, eps, tidx):
    pad = 0
    logits = (torch.randn(rows, vocab, device="cuda") * 3).to(dtype)
    targets = torch.randint(0, vocab, (rows,), device="cuda", dtype=tidx)
    targets[1::3] = pad
    gl, gn = torch.randn(rows, device="cuda"), torch.randn(rows, device="cuda")
    loss, nll, lse, sums = ls_torch.cross_entropy(logits, targets, eps, pad)
    dl = torch.full_like(logits, float("nan"))
    ls_torch.cross_entropy_bwd(gl, gn, logits, targets, lse, nll, eps, pad, out=dl)
    rl, rn, rd, count = reference(logits, targets, eps, pad, gl, gn)
    torch.cuda.synchronize()
    # float32 math: 1e-5 relative, plus an absolute floor of a few ulps of the
    # logits' magnitude for losses near 0 (lse - z_t cancels there).
    floor = 4e-7 * (1 + logits.float().abs().max().item())
    torch.testing.assert_close(loss.double(), rl, rtol=1e-5, atol=floor)
    torch.testing.assert_close(nll.double(), rn, rtol=1e-5, atol=floor)
    assert abs(sums[0].item() - rl.sum().item()) <= 1e-5 * rl.abs().sum().item() + 1e-6
    assert sums[2].item() == count.item()
    assert torch.isfinite(dl).all()
    assert rel(dl, rd) < TOL[dtype]


def test_unaligned_rows():
    logits = torch.randn(5 * 1001 + 1, device="cuda", dtype=torch.float16)[1:].view(5, 1001)
    targets = torch.randint(0, 1001, (5,), device="cuda")
    loss, nll, lse, _ = ls_torch.cross_entropy(logits, targets, 0.1)
    rl, rn, _, _ = reference(logits, targets, 0.1, -1, torch.ones(5, device="cuda"),
                             torch.zeros(5, device="cuda"))
    assert rel(loss, rl) < 1e-5


def test_out_of_range_target_is_nan_not_an_out_of_bounds_read():
    # Under compute-sanitizer memcheck this also proves no read past the row.
    logits = torch.randn(3, 10, device="cuda")
    targets = torch.tensor([1, 10**9, -7], device="cuda")
    loss, nll, lse, sums = ls_torch.cross_entropy(logits, targets, 0.1)
    d = ls_torch.cross_entropy_bwd(torch.ones(3, device="cuda"), torch.ones(3, device="cuda"),
                                   logits, targets, lse, nll, 0.1)
    torch.cuda.synchronize()
    assert torch.isfinite(loss[0]) and torch.isnan(loss[1:]).all() and torch.isnan(sums[0])
    assert torch.isfinite(d[0]).all() and torch.isnan(d[1:]).all()


def test_rejects_bad_epsilon():
    logits = torch.randn(2, 4, device="cuda")
    t = torch.zeros(2, dtype=torch.int64, device="cuda")
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        ls_torch.cross_entropy(logits, t, 1.0)


def test_confident_tokens_keep_their_small_loss():
    import math
    logits = torch.tensor([[20.0, 0.0], [0.0, 9.0]], device="cuda")
    targets = torch.tensor([0, 1], device="cuda")
    _, nll, lse, _ = ls_torch.cross_entropy(logits, targets, 0.0)
    want = torch.tensor([math.log1p(math.exp(-20.0)), math.log1p(math.exp(-9.0))])
    torch.testing.assert_close(nll.cpu().double(), want.double(), rtol=2e-5, atol=0)
    d = ls_torch.cross_entropy_bwd(torch.zeros(2, device="cuda"), torch.ones(2, device="cuda"),
                                   logits, targets, lse, nll, 0.0)
    a, b = math.exp(-20) / (1 + math.exp(-20)), math.exp(-9) / (1 + math.exp(-9))
    torch.testing.assert_close(d.cpu().double(), torch.tensor([[-a, a], [b, -b]]).double(),
                               rtol=2e-5, atol=0)
