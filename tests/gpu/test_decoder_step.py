"""Incremental decoding on the GPU (cuda/kernels/step_attention.cu,
cuda/layers/decoder_step.cc) against float64 PyTorch: the decoding attention
kernels (cache written in place, nothing else touched), the memory's
keys/values, the whole step, and a run of steps against the training
forward (decoder_layer_fwd) position by position. Tolerances: the layer
tests' (test_encoder_layer.TOL: fp32 5e-5; fp16 / bf16 at most 1.5x what
PyTorch's own half-precision step is off by, floored by TOL)."""
import pytest
import torch

import ls_torch
from test_encoder_layer import TOL, TOL_RELU, rel

lc = ls_torch.lc
DT = ls_torch.DTYPES
_stream = ls_torch._stream
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def attend_ref(q, k, v, visible):
    """q [B, heads, n, d], k / v [B, heads, L, d], visible [B, 1|heads, n, L]."""
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    s = s.masked_fill(~visible, float("-inf"))
    return torch.softmax(s, -1).nan_to_num(0.0) @ v


# ---- the decoding attention kernels

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("dims", [(3, 1, 4, 64, 0, 9), (2, 3, 2, 64, 5, 12), (5, 1, 3, 24, 17, 18),
                                  (2, 2, 2, 160, 7, 9), (4, 1, 8, 64, 300, 301)], ids=str)
def test_self_attention_kernel(dims, dtype):
    b, n, heads, d, cache_len, cap = dims
    h = heads * d
    qkv_raw = torch.randn(b * n, 3 * h, device="cuda").to(dtype)
    bias = (torch.randn(3 * h, device="cuda") * 0.5).to(dtype)
    keys = torch.randn(b, cap, heads, d, device="cuda").to(dtype)
    values = torch.randn_like(keys)
    k0, v0 = keys.clone(), values.clone()
    ctx = torch.empty(b * n, h, device="cuda", dtype=dtype)
    lc.step_self_attention(DT[dtype], qkv_raw.data_ptr(), bias.data_ptr(), keys.data_ptr(),
                           values.data_ptr(), cap, cache_len, ctx.data_ptr(), b, n, heads, d,
                           d ** -0.5, _stream())
    biased = (qkv_raw + bias).view(b, n, 3, heads, d)  # the dtype's rounding, as the kernel's
    new_k, new_v = biased[:, :, 1], biased[:, :, 2]
    torch.cuda.synchronize()
    # This call's rows written, every other row untouched.
    assert torch.equal(keys[:, cache_len:cache_len + n], new_k)
    assert torch.equal(values[:, cache_len:cache_len + n], new_v)
    assert torch.equal(keys[:, :cache_len], k0[:, :cache_len])
    assert torch.equal(keys[:, cache_len + n:], k0[:, cache_len + n:])
    assert torch.equal(values[:, cache_len + n:], v0[:, cache_len + n:])
    total = cache_len + n
    kk = torch.cat([k0[:, :cache_len], new_k], 1).double().transpose(1, 2)
    vv = torch.cat([v0[:, :cache_len], new_v], 1).double().transpose(1, 2)
    q = biased[:, :, 0].double().transpose(1, 2)
    vis = torch.arange(total, device="cuda")[None, :] <= cache_len + torch.arange(
        n, device="cuda")[:, None]
    want = attend_ref(q, kk, vv, vis[None, None]).transpose(1, 2).reshape(b * n, h)
    assert rel(ctx, want) < TOL[dtype] / 5


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("dims", [(4, 1, 4, 64, 11), (3, 2, 2, 40, 64), (2, 1, 1, 256, 1000)],
                         ids=str)
def test_cross_attention_kernel(dims, dtype):
    b, n, heads, d, s = dims
    h = heads * d
    q_raw = torch.randn(b * n, h, device="cuda").to(dtype)
    bias = (torch.randn(h, device="cuda") * 0.5).to(dtype)
    keys = torch.randn(b, s, heads, d, device="cuda").to(dtype)
    values = torch.randn_like(keys)
    lengths = torch.randint(1, s + 1, (b,), device="cuda", dtype=torch.int32)
    lengths[0] = 0  # no visible key: zeros, not NaN
    lengths[-1] = s + 5  # clamped
    ctx = torch.full((b * n, h), float("nan"), device="cuda", dtype=dtype)
    lc.step_cross_attention(DT[dtype], q_raw.data_ptr(), bias.data_ptr(), keys.data_ptr(),
                            values.data_ptr(), s, lengths.data_ptr(), ctx.data_ptr(), b, n, heads,
                            d, d ** -0.5, _stream())
    q = (q_raw + bias).view(b, n, heads, d).double().transpose(1, 2)
    vis = torch.arange(s, device="cuda")[None, :] < lengths.long()[:, None]
    want = attend_ref(q, keys.double().transpose(1, 2), values.double().transpose(1, 2),
                      vis[:, None, None, :]).transpose(1, 2).reshape(b * n, h)
    torch.cuda.synchronize()
    assert torch.all(ctx[:n] == 0)
    assert rel(ctx, want) < TOL[dtype] / 5


def test_kernels_reject_bad_shapes():
    x = torch.zeros(64, device="cuda")
    p = x.data_ptr()
    with pytest.raises(RuntimeError, match="step_self_attention"):  # cache_len + q_len > capacity
        lc.step_self_attention(lc.FLOAT32, p, p, p, p, 4, 4, p, 1, 1, 1, 4, 0.5, _stream())
    with pytest.raises(RuntimeError, match="step_self_attention"):  # head_dim over the limit
        lc.step_self_attention(lc.FLOAT32, p, p, p, p, 4, 0, p, 1, 1, 1,
                               lc.STEP_ATTENTION_MAX_HEAD_DIM + 1, 0.5, _stream())
    with pytest.raises(RuntimeError, match="step_cross_attention"):  # keys over the limit
        lc.step_cross_attention(lc.FLOAT32, p, p, p, p, lc.STEP_ATTENTION_MAX_KEYS + 1, 0, p, 1,
                                1, 1, 4, 0.5, _stream())


# ---- the whole step

import ls_torch_layers as lt  # noqa: E402

assert hasattr(lc, "decoder_step_fwd"), "harness built without cuBLAS (cuda/layers missing)"


def step_ref(p, x, keys, values, cache_len, mem_k, mem_v, mem_lengths, heads, pre_ln, act,
             eps=1e-6, dtype=torch.float64):
    """One KV-cache decoder step in plain PyTorch (in `dtype`): y and this
    call's keys / values [B, n, heads, d]."""
    b, n, h = x.shape
    d = h // heads
    P = {k: t.to(dtype) for k, t in p.items()}
    x = x.to(dtype)

    def ln(t, i):
        return torch.nn.functional.layer_norm(t, (h,), P["ln%d_gamma" % i], P["ln%d_beta" % i],
                                              eps)

    def heads_of(t):  # [B, L, h] -> [B, heads, L, d]
        return t.view(b, -1, heads, d).transpose(1, 2)

    new = {}

    def self_attention(t):
        q, k, v = (t @ P["qkv_kernel"] + P["qkv_bias"]).split(h, -1)
        new["k"], new["v"] = k.view(b, n, heads, d), v.view(b, n, heads, d)
        kk = torch.cat([keys[:, :cache_len].to(dtype), new["k"]], 1).transpose(1, 2)
        vv = torch.cat([values[:, :cache_len].to(dtype), new["v"]], 1).transpose(1, 2)
        vis = torch.arange(cache_len + n, device="cuda")[None, :] <= cache_len + torch.arange(
            n, device="cuda")[:, None]
        ctx = attend_ref(heads_of(q), kk, vv, vis[None, None]).transpose(1, 2).reshape(b, n, h)
        return ctx @ P["out_kernel"] + P["out_bias"]

    def cross_attention(t):
        q = heads_of(t @ P["q_kernel"] + P["q_bias"])
        s = mem_k.shape[1]
        vis = torch.arange(s, device="cuda")[None, :] < mem_lengths.long()[:, None]
        ctx = attend_ref(q, mem_k.to(dtype).transpose(1, 2), mem_v.to(dtype).transpose(1, 2),
                         vis[:, None, None, :]).transpose(1, 2).reshape(b, n, h)
        return ctx @ P["cross_out_kernel"] + P["cross_out_bias"]

    def ffn(t):
        f = t @ P["ffn1_kernel"] + P["ffn1_bias"]
        f = torch.relu(f) if act == "relu" else torch.nn.functional.gelu(f)
        return f @ P["ffn2_kernel"] + P["ffn2_bias"]

    y = x
    for i, fn in enumerate([self_attention, cross_attention, ffn], 1):
        y = y + fn(ln(y, i)) if pre_ln else ln(y + fn(y), i)
    return y, new["k"], new["v"]


def make_step_case(b, n, s, h, heads, f, cache_len, cap, dtype):
    p = lt.make_decoder_params(h, f, dtype)
    d = h // heads
    x = torch.randn(b, n, h, device="cuda").to(dtype)
    keys = torch.randn(b, cap, heads, d, device="cuda").to(dtype)
    values = torch.randn_like(keys)
    mem_k = torch.randn(b, s, heads, d, device="cuda").to(dtype)
    mem_v = torch.randn_like(mem_k)
    mem_lengths = torch.randint(1, s + 1, (b,), device="cuda", dtype=torch.int32)
    mem_lengths[0] = s
    return p, x, keys, values, mem_k, mem_v, mem_lengths


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("dims", [(3, 1, 5, 32, 4, 64, 0, 6), (4, 1, 48, 256, 8, 1024, 37, 64),
                                  (2, 3, 21, 64, 2, 96, 6, 9)], ids=str)
def test_step_matches_torch(dims, dtype, pre_ln, act):
    b, n, s, h, heads, f, cache_len, cap = dims
    p, x, keys, values, mem_k, mem_v, mem_lengths = make_step_case(b, n, s, h, heads, f,
                                                                   cache_len, cap, dtype)
    k0, v0 = keys.clone(), values.clone()
    step = lt.DecoderStep(b, n, cap, s, h, heads, f, pre_ln, act, dtype)
    y = step.forward(p, x, keys, values, cache_len, mem_k, mem_v, mem_lengths)
    ry, rk, rv = step_ref(p, x, k0, v0, cache_len, mem_k, mem_v, mem_lengths, heads, pre_ln, act)
    if dtype == torch.float32:
        bound = TOL[dtype]
    else:
        ty, _, _ = step_ref(p, x, k0, v0, cache_len, mem_k, mem_v, mem_lengths, heads, pre_ln,
                            act, dtype=dtype)
        floor = TOL_RELU[dtype] if act == "relu" else TOL[dtype]
        bound = max(floor, 1.5 * rel(ty, ry))
    torch.cuda.synchronize()
    assert rel(y, ry) < bound
    assert rel(keys[:, cache_len:cache_len + n], rk) < TOL[dtype]
    assert rel(values[:, cache_len:cache_len + n], rv) < TOL[dtype]
    assert torch.equal(keys[:, :cache_len], k0[:, :cache_len])
    assert torch.equal(keys[:, cache_len + n:], k0[:, cache_len + n:])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_memorize(dtype):
    b, s, h, heads = 3, 17, 64, 4
    p = lt.make_decoder_params(h, 128, dtype)
    memory = torch.randn(b, s, h, device="cuda").to(dtype)
    keys, values = lt.memorize(p, memory, heads)
    kv = memory.double() @ p["kv_kernel"].double() + p["kv_bias"].double()
    torch.cuda.synchronize()
    assert rel(keys, kv[..., :h].view(b, s, heads, h // heads)) < TOL[dtype] / 5
    assert rel(values, kv[..., h:].view(b, s, heads, h // heads)) < TOL[dtype] / 5


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("q_len", [1, 3])
def test_steps_reproduce_training_forward(dtype, pre_ln, q_len):
    """Memorize once, then decode a sequence q_len positions per call into a
    static cache: every position's output equals decoder_layer_fwd's (the
    training forward, dropout off) on the whole sequence."""
    b, L, s, h, heads, f = 4, 12, 9, 128, 4, 256
    p = lt.make_decoder_params(h, f, dtype)
    x = torch.randn(b, L, h, device="cuda").to(dtype)
    memory = torch.randn(b, s, h, device="cuda").to(dtype)
    mem_lengths = torch.tensor([s, 3, 7, 1], device="cuda", dtype=torch.int32)
    full = lt.DecoderLayer(b, L, s, h, heads, f, pre_ln, "gelu", dtype).forward(
        p, x, memory, mem_lengths, 0)
    mem_k, mem_v = lt.memorize(p, memory, heads)
    keys = torch.zeros(b, L, heads, h // heads, device="cuda", dtype=dtype)
    values = torch.zeros_like(keys)
    ys = []
    for t in range(0, L, q_len):
        step = lt.DecoderStep(b, q_len, L, s, h, heads, f, pre_ln, "gelu", dtype)
        ys.append(step.forward(p, x[:, t:t + q_len].contiguous(), keys, values, t, mem_k, mem_v,
                               mem_lengths))
    torch.cuda.synchronize()
    # fp32: two summation orders of the same float32 math; 16-bit: the
    # training forward rounds scores and probabilities to the dtype, the step
    # keeps them float32.
    assert rel(torch.cat(ys, 1), full) < TOL[dtype] / (5 if dtype == torch.float32 else 1)


def test_step_rejects_bad_config():
    b, h, heads, f = 2, 32, 4, 64
    p, x, keys, values, mem_k, mem_v, mem_lengths = make_step_case(b, 1, 5, h, heads, f, 0, 4,
                                                                   torch.float32)
    step = lt.DecoderStep(b, 1, 4, 5, h, heads, f, True, "relu", torch.float32)
    with pytest.raises(RuntimeError, match="decoder_step_fwd"):  # position 4 of a 4-row cache
        step.forward(p, x, keys, values, 4, mem_k, mem_v, mem_lengths)
    with pytest.raises(RuntimeError, match="decoder_step_fwd"):
        step.forward(p, x, keys, values, -1, mem_k, mem_v, mem_lengths)


def test_empty_batch():
    h, heads, f = 32, 4, 64
    p = lt.make_decoder_params(h, f, torch.float32)
    step = lt.DecoderStep(0, 1, 4, 5, h, heads, f, True, "relu", torch.float32)
    e = torch.empty(0, device="cuda")
    step.forward(p, e, e, e, 0, e, e, torch.empty(0, device="cuda", dtype=torch.int32))
