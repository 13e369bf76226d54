"""Whole decoder layer (cuda/layers/decoder_layer.cc) fwd/bwd vs a float64
PyTorch layer with the same weights and Philox dropout masks: output, dx,
dmemory and all twenty parameter gradients. Tolerances: test_encoder_layer's
(same steps, one more attention block)."""
import pytest
import torch

import ls_torch
from test_encoder_layer import TOL, TOL_RELU, mask, masked, rel

lc = ls_torch.lc
assert hasattr(lc, "decoder_layer_fwd"), "harness built without cuBLAS (cuda/layers missing)"
import ls_torch_layers as lt  # noqa: E402


def reference(p, x, memory, mem_lengths, dy, heads, pre_ln, act, rates, seed, eps=1e-6,
              dtype=torch.float64):
    b, lt_, h = x.shape
    ls_ = memory.shape[1]
    dh = h // heads
    p64 = {n: t.to(dtype).requires_grad_() for n, t in p.items()}
    x64 = x.to(dtype).requires_grad_()
    m64 = memory.to(dtype).requires_grad_()
    pa, pact, ph = rates

    def ln(t, i):
        return torch.nn.functional.layer_norm(t, (h,), p64["ln%d_gamma" % i],
                                              p64["ln%d_beta" % i], eps)

    def heads_of(t, length):
        return t.view(b, length, heads, dh).transpose(1, 2)

    def attend(q, k, v, visible, sd, out_k, out_b):
        s = (q @ k.transpose(-1, -2)) * dh ** -0.5
        s = s.masked_fill(~visible, float("-inf"))
        probs = masked(torch.softmax(s, -1).nan_to_num(0.0), mask(sd, s.shape, pa))
        ctx = (probs @ v).transpose(1, 2).reshape(b, lt_, h)
        return ctx @ p64[out_k] + p64[out_b]

    def self_attention(t):
        qkv = t @ p64["qkv_kernel"] + p64["qkv_bias"]
        q, k, v = (heads_of(u, lt_) for u in qkv.split(h, -1))
        causal = torch.ones(lt_, lt_, dtype=torch.bool, device="cuda").tril()
        return attend(q, k, v, causal[None, None], seed, "out_kernel", "out_bias")

    def cross_attention(t):
        q = heads_of(t @ p64["q_kernel"] + p64["q_bias"], lt_)
        k, v = (heads_of(u, ls_) for u in (m64 @ p64["kv_kernel"] + p64["kv_bias"]).split(h, -1))
        vis = torch.arange(ls_, device="cuda")[None, :] < mem_lengths[:, None]
        return attend(q, k, v, vis[:, None, None, :], seed + 2, "cross_out_kernel",
                      "cross_out_bias")

    def ffn(t):
        f = t @ p64["ffn1_kernel"] + p64["ffn1_bias"]
        f = torch.relu(f) if act == "relu" else torch.nn.functional.gelu(f)
        f = masked(f, mask(seed + 4, f.shape, pact))
        return f @ p64["ffn2_kernel"] + p64["ffn2_bias"]

    blocks = [(self_attention, seed + 1), (cross_attention, seed + 3), (ffn, seed + 5)]
    y = x64
    for i, (fn, sd) in enumerate(blocks, 1):
        m = mask(sd, x.shape, ph)
        y = y + masked(fn(ln(y, i)), m) if pre_ln else ln(y + masked(fn(y), m), i)
    y.backward(dy.to(dtype))
    return y.detach(), x64.grad, m64.grad, {n: t.grad for n, t in p64.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("dims", [(3, 7, 5, 32, 4, 64), (2, 64, 48, 256, 8, 1024),
                                  (4, 13, 21, 64, 2, 96)], ids=str)
@pytest.mark.parametrize("rates", [(0.0, 0.0, 0.0), (0.1, 0.2, 0.3)], ids=["nodrop", "drop"])
def test_matches_torch(dims, dtype, pre_ln, act, rates):
    b, lt_, ls_, h, heads, f = dims
    p = lt.make_decoder_params(h, f, dtype)
    x = torch.randn(b, lt_, h, device="cuda").to(dtype)
    memory = torch.randn(b, ls_, h, device="cuda").to(dtype)
    dy = torch.randn(b, lt_, h, device="cuda").to(dtype)
    mem_lengths = torch.randint(1, ls_ + 1, (b,), device="cuda", dtype=torch.int32)
    mem_lengths[0] = ls_
    layer = lt.DecoderLayer(b, lt_, ls_, h, heads, f, pre_ln, act, dtype, *rates)
    seed = 4321
    y = layer.forward(p, x, memory, mem_lengths, seed)
    dx, dmem, grads = layer.backward(p, x, memory, mem_lengths, dy, seed)
    ry, rdx, rdmem, rgrads = reference(p, x, memory, mem_lengths, dy, heads, pre_ln, act, rates,
                                       seed)
    names = ["y", "dx", "dmemory"] + lt.DEC_PARAMS
    ours = dict(zip(names, [y, dx, dmem] + [grads[n] for n in lt.DEC_PARAMS]))
    refs = dict(zip(names, [ry, rdx, rdmem] + [rgrads[n] for n in lt.DEC_PARAMS]))
    if dtype == torch.float32:
        bound = {n: TOL[dtype] for n in names}
    else:
        ty, tdx, tdmem, tgrads = reference(p, x, memory, mem_lengths, dy, heads, pre_ln, act,
                                           rates, seed, dtype=dtype)
        theirs = dict(zip(names, [ty, tdx, tdmem] + [tgrads[n] for n in lt.DEC_PARAMS]))
        floor = TOL_RELU[dtype] if act == "relu" else TOL[dtype]
        bound = {n: max(floor, 1.5 * rel(theirs[n], refs[n])) for n in names}
    torch.cuda.synchronize()
    for n in names:
        assert rel(ours[n], refs[n]) < bound[n], n


def test_deterministic_and_buffers_reusable():
    b, lt_, ls_, h, heads, f = 4, 32, 24, 128, 4, 512
    p = lt.make_decoder_params(h, f, torch.float16)
    x = torch.randn(b, lt_, h, device="cuda", dtype=torch.float16)
    memory = torch.randn(b, ls_, h, device="cuda", dtype=torch.float16)
    dy = torch.randn_like(x)
    mem_lengths = torch.full((b,), ls_, device="cuda", dtype=torch.int32)
    layer = lt.DecoderLayer(b, lt_, ls_, h, heads, f, True, "relu", torch.float16, 0.1, 0.1, 0.1)
    outs = []
    for _ in range(2):
        y = layer.forward(p, x, memory, mem_lengths, 7)
        dx, dmem, g = layer.backward(p, x, memory, mem_lengths, dy, 7)
        outs.append([y.clone(), dx.clone(), dmem.clone()] + [g[n].clone() for n in lt.DEC_PARAMS])
    for a, c in zip(*outs):
        assert torch.equal(a, c)
