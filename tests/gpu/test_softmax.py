"""Attention softmax launchers vs a PyTorch float64 reference using the numpy
Philox mask. Tolerances as in test_layer_norm.py (relative L2)."""
import numpy as np
import pytest
import torch

import ls_torch
import philox_ref

TOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def reference(scores, lengths, scale, causal, rate, seed, dy):
    b, h, lq, lk = scores.shape
    z = scores.double().requires_grad_()
    vis = torch.ones(b, 1, lq, lk, dtype=torch.bool, device="cuda")
    if lengths is not None:
        vis &= (torch.arange(lk, device="cuda")[None, :] < lengths[:, None].clamp(0, lk))[:, None, None, :]
    if causal:
        i = torch.arange(lq, device="cuda")[:, None]
        j = torch.arange(lk, device="cuda")[None, :]
        vis &= (j <= i + (lk - lq))[None, None]
    logits = torch.where(vis, scale * z, torch.tensor(-float("inf"), device="cuda", dtype=z.dtype))
    p = torch.softmax(logits, -1).nan_to_num(0.0)
    keep = torch.from_numpy(philox_ref.keep_mask(seed, scores.numel(), rate).reshape(scores.shape))
    m = keep.cuda().double() * float(philox_ref.scale(rate))
    y = p * m
    y.backward(dy.double())
    return y.detach(), z.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
# k_len % 8 == 0 up to 1024 takes the register-resident fast path (every
# lanes-per-row / chunks geometry below); the others the generic path.
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 2, 64, 64), (2, 2, 33, 257), (1, 1, 3, 1500),
                                   (2, 1, 1, 40), (3, 2, 5, 8), (2, 2, 7, 16), (2, 1, 9, 32),
                                   (2, 2, 17, 128), (2, 1, 6, 256), (2, 1, 5, 512),
                                   (2, 1, 3, 1024), (1, 1, 2, 1032)], ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rate", [0.0, 0.2])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_matches_torch(shape, dtype, causal, rate, with_lengths):
    b, h, lq, lk = shape
    scores = (torch.randn(shape, device="cuda") * 2).to(dtype)
    lengths = None
    if with_lengths:  # includes a zero length: a fully masked batch row
        lengths = torch.randint(1, lk + 1, (b,), device="cuda", dtype=torch.int32)
        lengths[0] = 0 if b > 1 else lengths[0]
    dy = torch.randn(shape, device="cuda").to(dtype)
    scale, seed = 0.125, 31
    y = torch.full_like(scores, float("nan"))
    ls_torch.attn_softmax(scores, lengths, scale, causal, rate, seed, out=y)
    dz = torch.full_like(scores, float("nan"))
    ls_torch.attn_softmax_bwd(dy, scores, lengths, scale, causal, rate, seed, out=dz)
    ry, rdz = reference(scores, lengths, scale, causal, rate, seed, dy)
    torch.cuda.synchronize()
    assert torch.isfinite(y).all() and torch.isfinite(dz).all()
    assert rel(y, ry) < TOL[dtype] and rel(dz, rdz) < TOL[dtype]


@pytest.mark.parametrize("lk", [100, 64, 24])  # generic path; fast path (64: 8 lanes, 24: 4)
def test_dropout_mask_is_bitwise_the_reference(lk):
    scores = torch.randn(2, 2, 8, lk, device="cuda")
    y = ls_torch.attn_softmax(scores, None, 1.0, False, 0.3, 5)
    keep = philox_ref.keep_mask(5, scores.numel(), 0.3).reshape(scores.shape)
    assert np.array_equal((y != 0).cpu().numpy(), keep)


def test_fast_and_generic_paths_agree():
    """A misaligned view forces the generic path on the same numbers."""
    buf = torch.randn(2 * 4 * 8 * 64 + 1, device="cuda", dtype=torch.float16)
    aligned = buf[:-1].clone().view(2, 4, 8, 64)
    shifted = buf[1:].view(2, 4, 8, 64)
    shifted.copy_(aligned)
    lengths = torch.tensor([64, 20], device="cuda", dtype=torch.int32)
    out = [ls_torch.attn_softmax(z, lengths, 0.5, True, 0.1, 9) for z in (aligned, shifted)]
    torch.testing.assert_close(out[0], out[1], rtol=2e-3, atol=1e-4)


def test_lengths_beyond_k_len_are_clamped_not_read():
    scores = torch.randn(2, 1, 4, 6, device="cuda")
    lengths = torch.tensor([100, -3], device="cuda", dtype=torch.int32)
    y = ls_torch.attn_softmax(scores, lengths, 1.0, False, 0.0, 1)
    torch.cuda.synchronize()
    assert torch.allclose(y[0].sum(-1), torch.ones(1, 4, device="cuda"))
    assert torch.equal(y[1], torch.zeros_like(y[1]))
