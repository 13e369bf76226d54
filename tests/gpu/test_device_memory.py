"""Device memory returns to its baseline after every launcher, at the driver
level: memory taken outside torch's allocator (a cudaMalloc in a launcher, a
library handle or workspace created per call) would lower the device's free
memory without raising torch's reserved memory. One round calls every
launcher of the harness (kernels, layers forward/backward, decoding step,
optimizer); the first round is the warm-up (lazy module loading and the
cuBLAS handle take memory once), then twenty more rounds must leave
free + torch-reserved memory exactly where it was."""
import torch

import ls_torch as lt
import ls_torch_adam as la
import ls_torch_layers as ll


def one_round():
    dt = torch.float16
    b, length, h, heads, f, s = 2, 8, 32, 4, 64, 6
    x = torch.randn(b, length, h, device="cuda", dtype=dt)
    g, bt = torch.ones(h, device="cuda", dtype=dt), torch.zeros(h, device="cuda", dtype=dt)
    y, mean, rstd = lt.layer_norm_fwd(x, g, bt, 1e-5)
    lt.layer_norm_bwd(y, x, mean, rstd, g)
    lt.bias_dropout_residual_bwd(lt.bias_dropout_residual(x, g, x, 0.1, 1), 0.1, 1)
    lt.bias_act_dropout_bwd(x, x, g, 0.1, 2, "gelu")
    lt.bias_act_dropout(x, g, 0.1, 2)
    lt.dropout(x, 0.1, 3)
    sc = torch.randn(b, heads, length, length, device="cuda", dtype=dt)
    ln = torch.tensor([length, 3], device="cuda", dtype=torch.int32)
    lt.attn_softmax_bwd(lt.attn_softmax(sc, ln, 0.5, True, 0.1, 4), sc, ln, 0.5, True, 0.1, 4)
    lt.merge_heads(lt.split_heads(x, g, heads, 1))
    logits = torch.randn(b * length, 40, device="cuda", dtype=dt)
    tg = torch.randint(0, 40, (b * length,), device="cuda")
    loss, nll, lse, _ = lt.cross_entropy(logits, tg, 0.1)
    lt.cross_entropy_bwd(torch.ones_like(loss), torch.zeros_like(nll), logits, tg, lse, nll, 0.1)
    ids = torch.randint(0, 50, (b, length), device="cuda", dtype=torch.int32)
    table = torch.randn(50, h, device="cuda")
    e = lt.embedding_fwd(ids, table, 1.0, dtype=dt, rate=0.1, seed=5)
    lt.embedding_bwd(e, ids, 50, torch.float32, 1.0, rate=0.1, seed=5)

    p = ll.make_params(h, f, dt)
    enc = ll.EncoderLayer(b, length, h, heads, f, True, "relu", dt, 0.1, 0.1, 0.1)
    enc.forward(p, x, ln, 6)
    enc.backward(p, x, ln, x, 6)
    dp = ll.make_decoder_params(h, f, dt)
    memory = torch.randn(b, s, h, device="cuda", dtype=dt)
    ml = torch.tensor([s, 2], device="cuda", dtype=torch.int32)
    dec = ll.DecoderLayer(b, length, s, h, heads, f, False, "gelu", dt, 0.1, 0.1, 0.1)
    dec.forward(dp, x, memory, ml, 7)
    dec.backward(dp, x, memory, ml, x, 7)
    mk, mv = ll.memorize(dp, memory, heads)
    keys = torch.zeros(b, 4, heads, h // heads, device="cuda", dtype=dt)
    ll.DecoderStep(b, 1, 4, s, h, heads, f, True, "relu", dt).forward(
        dp, x[:, :1].contiguous(), keys, torch.zeros_like(keys), 2, mk, mv, ml)

    params = [torch.randn(100, device="cuda") for _ in range(3)]
    grads = [torch.randn_like(t) for t in params]
    m, v = [torch.zeros_like(t) for t in params], [torch.zeros_like(t) for t in params]
    la.multi_tensor_adam(params, m, v, grads, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    torch.cuda.synchronize()


def outside_torch_free():
    torch.cuda.synchronize()
    free, _ = torch.cuda.mem_get_info()
    return free + torch.cuda.memory_reserved()


def test_device_memory_returns_to_baseline():
    one_round()
    base = outside_torch_free()
    for _ in range(20):
        one_round()
    assert outside_torch_free() == base
