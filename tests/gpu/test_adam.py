"""Multi-tensor Adam / AdamW launcher vs the numpy float32 reference (bit for
bit: the kernel rounds every op, no FMA) and vs torch.optim.Adam / AdamW
(tolerance: torch does its scalar arithmetic in double)."""
import numpy as np
import pytest
import torch

import ls_torch_adam as la
from adam_ref import differing_bits, numpy_adam

# Around the 4-element vector, the 16384-element chunk, and odd sizes.
SIZES = [1, 3, 4, 5, 8, 33, 1000, 1023, 16383, 16384, 16385, 100003, (64, 129), (1024, 33)]
GRAD_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def make_state(sizes, gen_seed, offset=0):
    """fp32 params, m, v (v >= 0). offset > 0 places every tensor `offset`
    elements into its own buffer: misaligned pointers (the scalar path)."""
    g = torch.Generator(device="cuda").manual_seed(gen_seed)

    def one(shape, scale, positive=False):
        n = int(np.prod(shape))
        buf = torch.zeros(n + offset, device="cuda")
        t = buf[offset:].view(shape)
        t.copy_(torch.rand(shape, device="cuda", generator=g) if positive else
                torch.randn(shape, device="cuda", generator=g))
        return t.mul_(scale)

    shapes = [(s,) if isinstance(s, int) else s for s in sizes]
    return ([one(s, 1.0) for s in shapes], [one(s, 0.1) for s in shapes],
            [one(s, 0.01, True) for s in shapes])


def make_grads(params, dtype, seed, scale=1.0, offset=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    out = []
    for p in params:
        buf = torch.empty(p.numel() + offset, device="cuda", dtype=dtype)
        t = buf[offset:].view(p.shape)
        t.copy_(torch.randn(p.shape, device="cuda", generator=g) * scale)
        out.append(t)
    return out


def host(ts):
    return [t.detach().float().cpu().numpy() for t in ts]


def assert_bits(ours, ref, what):
    torch.cuda.synchronize()
    for i, (a, b) in enumerate(zip(ours, ref)):
        a = a.detach().cpu().numpy()
        bad = differing_bits(a, b)
        assert bad.size == 0, (f"{what}[{i}] ({a.size} elements): {bad.size} differ, first at "
                               f"{bad[0]}: {a.flat[bad[0]]!r} vs {np.asarray(b).flat[bad[0]]!r}")


@pytest.mark.parametrize("dtype", GRAD_DTYPES, ids=str)
@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
@pytest.mark.parametrize("wd", [0.0, 0.01])
@pytest.mark.parametrize("grad_scale", [1.0, 3.0])
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "misaligned"])
def test_bit_exact_vs_numpy(dtype, adamw, wd, grad_scale, offset):
    p, m, v = make_state(SIZES, 0, offset)
    rp, rm, rv = host(p), host(m), host(v)
    for step in (1, 2, 7):
        lr = 1e-3 * step
        grads = make_grads(p, dtype, 10 + step, grad_scale, offset)
        la.multi_tensor_adam(p, m, v, grads, lr, 0.9, 0.98, 1e-8, wd, step, adamw=adamw,
                             grad_scale=grad_scale)
        for i, gh in enumerate(host(grads)):
            rp[i], rm[i], rv[i] = numpy_adam(rp[i], rm[i], rv[i], gh, lr, 0.9, 0.98, 1e-8, wd,
                                             step, adamw, grad_scale)
    assert_bits(p, rp, "param")
    assert_bits(m, rm, "m")
    assert_bits(v, rv, "v")


def test_denormals_are_not_flushed():
    """g^2 of a 1e-20 grad is denormal: kept, as numpy (and the CPU twin) do."""
    g = np.array([1e-20, -1e-19, 1e-21, 3e-23, 1.0, 0.0, 2e-20, 5e-21, 1e-22], np.float32)
    p, m, v = (torch.zeros(g.size, device="cuda") for _ in range(3))
    la.multi_tensor_adam([p], [m], [v], [torch.from_numpy(g).cuda()], 1e-3, 0.9, 0.999, 1e-8,
                         0.0, 1)
    z = np.zeros(g.size, np.float32)
    ref = numpy_adam(z, z, z, g, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, False, 1.0)
    assert 0 < ref[2][0] < np.finfo(np.float32).tiny
    assert_bits([p, m, v], ref, "p/m/v")


@pytest.mark.parametrize("copy_dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "misaligned"])
def test_model_copy_is_rounded_new_param(copy_dtype, offset):
    p, m, v = make_state(SIZES, 1, offset)
    grads = make_grads(p, torch.float16, 2, 1.0, offset)
    copies = []
    for i, t in enumerate(p):
        if i == 2:
            copies.append(None)  # a tensor without a model copy in the same launch
            continue
        buf = torch.full((t.numel() + offset,), 7.0, device="cuda", dtype=copy_dtype)
        copies.append(buf[offset:].view(t.shape))
    rp, rm, rv = host(p), host(m), host(v)
    la.multi_tensor_adam(p, m, v, grads, 1e-2, 0.9, 0.999, 1e-8, 0.0, 1, copies=copies)
    for i, gh in enumerate(host(grads)):
        rp[i], rm[i], rv[i] = numpy_adam(rp[i], rm[i], rv[i], gh, 1e-2, 0.9, 0.999, 1e-8, 0.0, 1,
                                         False, 1.0)
    assert_bits(p, rp, "param")
    assert_bits(m, rm, "m")
    for i, c in enumerate(copies):
        if c is not None:
            expect = torch.from_numpy(rp[i]).to(copy_dtype).cuda()
            assert torch.equal(c, expect), f"copy {i} is not the rounded new param"


def test_found_inf_check_then_skip_without_sync():
    p, m, v = make_state(SIZES, 3)
    snap = [t.clone() for t in p + m + v]
    grads = make_grads(p, torch.float16, 4)
    copies = [torch.full(t.shape, 7.0, device="cuda", dtype=torch.float16) for t in p]
    flag = la.multi_tensor_found_inf(grads)
    assert flag.item() == 0.0
    grads[5].view(-1)[17] = float("inf")
    la.multi_tensor_found_inf(grads, out=flag)
    la.multi_tensor_adam(p, m, v, grads, 1e-2, 0.9, 0.999, 1e-8, 0.1, 3, adamw=True,
                         grad_scale=4.0, found_inf=flag, copies=copies)
    assert flag.item() == 1.0
    for a, b in zip(p + m + v, snap):
        assert torch.equal(a, b), "a skipped step changed a tensor"
    assert all(bool((c == 7.0).all()) for c in copies), "a skipped step wrote a model copy"
    # NaN in another dtype's list ORs into the same flag; reset clears it.
    ok = la.multi_tensor_found_inf(make_grads(p[:3], torch.float32, 5))
    assert ok.item() == 0.0
    g32 = make_grads(p[:3], torch.float32, 5)
    g32[2].view(-1)[-1] = float("nan")
    la.multi_tensor_found_inf(g32, out=ok, reset=False)
    assert ok.item() == 1.0
    grads[5].view(-1)[17] = 0.0
    la.multi_tensor_found_inf(grads, out=flag)
    assert flag.item() == 0.0
    la.multi_tensor_adam(p, m, v, grads, 1e-2, 0.9, 0.999, 1e-8, 0.1, 3, adamw=True,
                         grad_scale=4.0, found_inf=flag)
    assert not torch.equal(p[6], snap[6]), "a zero flag must update"


# (pointer offset, tensor, element): vector path first/last element, the
# scalar tail after a chunk (16385 = chunk + 1), a misaligned (scalar) tensor.
@pytest.mark.parametrize("offset,i,k", [(0, 0, 0), (0, -1, -1), (0, 10, 16384), (1, 11, 50001)])
def test_found_inf_sees_every_element(offset, i, k):
    p, _, _ = make_state(SIZES, 6, offset)
    grads = make_grads(p, torch.bfloat16, 7, offset=offset)
    assert la.multi_tensor_found_inf(grads).item() == 0.0
    grads[i].view(-1)[k] = float("-inf")
    assert la.multi_tensor_found_inf(grads).item() == 1.0


def test_many_tensors_several_launches():
    """More tensors than one launch's parameter struct holds (68-80), empty
    tensors between them, with and without model copies."""
    gen = np.random.default_rng(8)
    sizes = [int(s) for s in gen.integers(1, 3000, size=300)]
    sizes[5] = sizes[77] = 0
    p, m, v = make_state(sizes, 9)
    grads = make_grads(p, torch.float32, 10)
    copies = [torch.empty(t.shape, device="cuda", dtype=torch.bfloat16) for t in p]
    rp, rm, rv = host(p), host(m), host(v)
    la.multi_tensor_adam(p, m, v, grads, 3e-4, 0.9, 0.999, 1e-6, 0.01, 4, adamw=True,
                         copies=copies)
    for i, gh in enumerate(host(grads)):
        rp[i], rm[i], rv[i] = numpy_adam(rp[i], rm[i], rv[i], gh, 3e-4, 0.9, 0.999, 1e-6, 0.01,
                                         4, True, 1.0)
    assert_bits(p, rp, "param")
    assert_bits(m, rm, "m")
    assert_bits(v, rv, "v")
    for t, c in zip(p, copies):
        assert torch.equal(c, t.to(torch.bfloat16))


@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
@pytest.mark.parametrize("dtype", GRAD_DTYPES, ids=str)
def test_matches_torch_optim(adamw, dtype):
    """torch.optim.Adam / AdamW (fused=True) for 5 steps, fed the same grads
    unscaled as float32 (our first op: grad / grad_scale). torch keeps lr,
    betas and bias corrections in double, we round them to float32 once: the
    results differ by float32 rounding only."""
    p, m, v = make_state(SIZES, 11)
    for t in m + v:
        t.zero_()  # torch starts from zero moments
    ref = [torch.nn.Parameter(t.clone()) for t in p]
    wd, scale = 0.02, 8.0
    cls = torch.optim.AdamW if adamw else torch.optim.Adam
    opt = cls(ref, lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=wd, fused=True)
    for step in range(1, 6):
        grads = make_grads(p, dtype, 20 + step, scale)
        la.multi_tensor_adam(p, m, v, grads, 1e-3, 0.9, 0.98, 1e-8, wd, step, adamw=adamw,
                             grad_scale=scale)
        for r, g in zip(ref, grads):
            r.grad = g.float() / scale
        opt.step()
    torch.cuda.synchronize()
    for i, (a, r) in enumerate(zip(p, ref)):
        st = opt.state[r]
        torch.testing.assert_close(a, r.detach(), rtol=2e-6, atol=2e-6, msg=f"param {i}")
        torch.testing.assert_close(m[i], st["exp_avg"], rtol=1e-5, atol=1e-6, msg=f"m {i}")
        torch.testing.assert_close(v[i], st["exp_avg_sq"], rtol=1e-5, atol=1e-9, msg=f"v {i}")
    moved = (p[10] - make_state(SIZES, 11)[0][10]).abs().max().item()
    assert moved > 1e-4, "params did not move"


def test_invalid_arguments_raise():
    p, m, v = make_state([4], 12)
    g = make_grads(p, torch.float32, 13)
    with pytest.raises(RuntimeError, match="multi_tensor_adam"):
        la.multi_tensor_adam(p, m, v, g, 1e-3, 1.0, 0.999, 1e-8, 0.0, 1)
    with pytest.raises(RuntimeError, match="multi_tensor_adam"):
        la.multi_tensor_adam(p, m, v, g, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0)
    with pytest.raises(RuntimeError, match="multi_tensor_adam"):  # fp32 model copy
        la.multi_tensor_adam(p, m, v, g, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1,
                             copies=[torch.empty(4, device="cuda")])
