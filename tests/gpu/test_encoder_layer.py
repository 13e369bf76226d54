"""Whole encoder layer (cuda/layers) fwd/bwd vs a float64 PyTorch layer with
the same weights and the same Philox dropout masks (tests/common/philox_ref)."""
import numpy as np
import pytest
import torch

import ls_torch
import philox_ref

lc = ls_torch.lc
assert hasattr(lc, "encoder_layer_fwd"), "harness built without cuBLAS (cuda/layers missing)"
import ls_torch_layers as lt  # noqa: E402

# Relative L2 error against the float64 layer. fp32: reassociation. 16-bit:
# every activation is stored in 16 bits over ~20 dependent steps, so the
# bound is relative to PyTorch's own half-precision layer on the same inputs
# and masks: ours may not be worse than 1.5x its error, or than TOL. With
# ReLU, an FFN input that rounds across 0 (probability ~1e-3 per element in
# fp16) moves one gradient entry by O(|dy|): over the 1-5k FFN elements of
# the small cases, k such flips give ~sqrt(k / n) = 2-3 % on the FFN1
# gradients, for us and for PyTorch alike but in different elements (measured:
# GELU, which has no kink, matches PyTorch's error within 10 % in every case).
TOL = {torch.float32: 5e-5, torch.float16: 1e-2, torch.bfloat16: 8e-2}
TOL_RELU = {torch.float16: 3e-2, torch.bfloat16: 8e-2}


def mask(seed, shape, rate):
    n = int(np.prod(shape))
    keep = philox_ref.keep_mask(seed, n, rate).reshape(shape)
    return torch.from_numpy(keep.astype(np.float64) * float(philox_ref.scale(rate))).cuda()


def masked(t, m):
    return t * m.to(t.dtype)


def reference(p, x, lengths, dy, heads, pre_ln, act, rates, seed, eps=1e-6, dtype=torch.float64):
    """The layer in plain PyTorch ops, in `dtype` (float64: the reference;
    the 16-bit types: PyTorch's own half-precision layer, for scale)."""
    b, length, h = x.shape
    dh = h // heads
    p64 = {n: t.to(dtype).requires_grad_() for n, t in p.items()}
    x64 = x.to(dtype).requires_grad_()
    pa, pact, ph = rates

    def ln(t, g, bb):
        return torch.nn.functional.layer_norm(t, (h,), p64[g], p64[bb], eps)

    def attention(t):
        qkv = t @ p64["qkv_kernel"] + p64["qkv_bias"]
        q, k, v = (u.view(b, length, heads, dh).transpose(1, 2) for u in qkv.split(h, -1))
        s = q @ k.transpose(-1, -2) * dh ** -0.5
        vis = torch.arange(length, device="cuda")[None, :] < lengths[:, None]
        s = s.masked_fill(~vis[:, None, None, :], float("-inf"))
        probs = masked(torch.softmax(s, -1).nan_to_num(0.0), mask(seed, (b, heads, length, length), pa))
        ctx = (probs @ v).transpose(1, 2).reshape(b, length, h)
        return ctx @ p64["out_kernel"] + p64["out_bias"]

    def ffn(t):
        f = t @ p64["ffn1_kernel"] + p64["ffn1_bias"]
        f = torch.relu(f) if act == "relu" else torch.nn.functional.gelu(f)
        f = masked(f, mask(seed + 2, f.shape, pact))
        return f @ p64["ffn2_kernel"] + p64["ffn2_bias"]

    m1, m3 = mask(seed + 1, x.shape, ph), mask(seed + 3, x.shape, ph)
    if pre_ln:
        x1 = x64 + masked(attention(ln(x64, "ln1_gamma", "ln1_beta")), m1)
        y = x1 + masked(ffn(ln(x1, "ln2_gamma", "ln2_beta")), m3)
    else:
        x1 = ln(x64 + masked(attention(x64), m1), "ln1_gamma", "ln1_beta")
        y = ln(x1 + masked(ffn(x1), m3), "ln2_gamma", "ln2_beta")
    y.backward(dy.to(dtype))
    return y.detach(), x64.grad, {n: t.grad for n, t in p64.items()}


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("dims", [(3, 7, 32, 4, 64), (2, 64, 256, 8, 1024), (4, 13, 64, 2, 96)],
                         ids=str)
@pytest.mark.parametrize("rates", [(0.0, 0.0, 0.0), (0.1, 0.2, 0.3)], ids=["nodrop", "drop"])
def test_matches_torch(dims, dtype, pre_ln, act, rates):
    b, length, h, heads, f = dims
    p = lt.make_params(h, f, dtype)
    x = torch.randn(b, length, h, device="cuda").to(dtype)
    dy = torch.randn(b, length, h, device="cuda").to(dtype)
    lengths = torch.randint(1, length + 1, (b,), device="cuda", dtype=torch.int32)
    lengths[0] = length
    layer = lt.EncoderLayer(b, length, h, heads, f, pre_ln, act, dtype, *rates)
    seed = 1234
    y = layer.forward(p, x, lengths, seed)
    dx, grads = layer.backward(p, x, lengths, dy, seed)
    ry, rdx, rgrads = reference(p, x, lengths, dy, heads, pre_ln, act, rates, seed)
    if dtype == torch.float32:
        bound = {name: TOL[dtype] for name in ["y", "dx"] + lt.PARAMS}
    else:
        ty, tdx, tgrads = reference(p, x, lengths, dy, heads, pre_ln, act, rates, seed,
                                    dtype=dtype)
        torch_err = {"y": rel(ty, ry), "dx": rel(tdx, rdx)}
        torch_err.update({n: rel(tgrads[n], rgrads[n]) for n in lt.PARAMS})
        floor = TOL_RELU[dtype] if act == "relu" else TOL[dtype]
        bound = {n: max(floor, 1.5 * e) for n, e in torch_err.items()}
    torch.cuda.synchronize()
    assert rel(y, ry) < bound["y"]
    assert rel(dx, rdx) < bound["dx"]
    for name in lt.PARAMS:
        assert rel(grads[name], rgrads[name]) < bound[name], name


def test_deterministic_and_buffers_reusable():
    b, length, h, heads, f = 4, 32, 128, 4, 512
    p = lt.make_params(h, f, torch.float16)
    x = torch.randn(b, length, h, device="cuda", dtype=torch.float16)
    dy = torch.randn_like(x)
    lengths = torch.full((b,), length, device="cuda", dtype=torch.int32)
    layer = lt.EncoderLayer(b, length, h, heads, f, True, "relu", torch.float16, 0.1, 0.1, 0.1)
    outs = []
    for _ in range(2):
        y = layer.forward(p, x, lengths, 7)
        dx, g = layer.backward(p, x, lengths, dy, 7)
        outs.append((y.clone(), dx.clone(), {n: t.clone() for n, t in g.items()}))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    for n in lt.PARAMS:
        assert torch.equal(outs[0][2][n], outs[1][2][n]), n
