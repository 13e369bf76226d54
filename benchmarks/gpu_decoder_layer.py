"""Whole decoder layer fwd+bwd (cuda/layers, fp16, dropout 0.1, pre-LN relu,
memory as long as the target): ours vs PyTorch eager (manual attention),
eager + SDPA and the GEMM-only floor in the same run, plus the activation
memory each keeps for its backward.

    python3 benchmarks/gpu_decoder_layer.py --out benchmarks/results
"""
import math

import torch
import torch.nn.functional as F

import gpu_common as gc
import ls_torch_layers as lt

DT = torch.float16
P = 0.1
CASES = [("big", 64, 64, 1024, 16, 4096), ("base", 64, 64, 512, 8, 2048),
         ("big", 64, 256, 1024, 16, 4096)]  # name, batch, len, hidden, heads, ffn


def attention(q, k, v, causal, sdpa):
    if sdpa:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=P, is_causal=causal)
    s = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(~torch.ones(n, n, dtype=torch.bool, device=s.device).tril(),
                          float("-inf"))
    return F.dropout(torch.softmax(s, -1), P) @ v


def torch_layer(p, x, memory, heads, sdpa):
    b, length, h = x.shape
    d = h // heads

    def split(t):
        return t.view(b, -1, heads, d).transpose(1, 2)

    def merge(t):
        return t.transpose(1, 2).reshape(b, length, h)

    a = F.layer_norm(x, (h,), p["ln1_gamma"], p["ln1_beta"], 1e-6)
    q, k, v = (split(u) for u in (a @ p["qkv_kernel"] + p["qkv_bias"]).split(h, -1))
    x = x + F.dropout(merge(attention(q, k, v, True, sdpa)) @ p["out_kernel"] + p["out_bias"], P)
    a = F.layer_norm(x, (h,), p["ln2_gamma"], p["ln2_beta"], 1e-6)
    q = split(a @ p["q_kernel"] + p["q_bias"])
    k, v = (split(u) for u in (memory @ p["kv_kernel"] + p["kv_bias"]).split(h, -1))
    x = x + F.dropout(merge(attention(q, k, v, False, sdpa)) @ p["cross_out_kernel"]
                      + p["cross_out_bias"], P)
    f = F.layer_norm(x, (h,), p["ln3_gamma"], p["ln3_beta"], 1e-6)
    f = F.dropout(torch.relu(f @ p["ffn1_kernel"] + p["ffn1_bias"]), P)
    return x + F.dropout(f @ p["ffn2_kernel"] + p["ffn2_bias"], P)


def run_case(name, b, length, h, heads, ff, profile):
    t = b * length
    p = lt.make_decoder_params(h, ff, DT)
    x = torch.randn(b, length, h, device="cuda", dtype=DT)
    memory = torch.randn(b, length, h, device="cuda", dtype=DT)
    dy = torch.randn_like(x)
    mem_lengths = torch.full((b,), length, device="cuda", dtype=torch.int32)
    layer = lt.DecoderLayer(b, length, length, h, heads, ff, True, "relu", DT, P, P, P)
    y, dx, dmem = torch.empty_like(x), torch.empty_like(x), torch.empty_like(memory)
    grads = {n: torch.empty_like(v) for n, v in p.items()}

    def ours():
        layer.forward(p, x, memory, mem_lengths, 11, out=y)
        layer.backward(p, x, memory, mem_lengths, dy, 11, out=(dx, dmem, grads))

    tp = {n: v.clone().requires_grad_() for n, v in p.items()}
    xt, mt = x.clone().requires_grad_(), memory.clone().requires_grad_()

    def eager(sdpa=False):
        torch_layer(tp, xt, mt, heads, sdpa).backward(dy)

    if profile:
        gc.kernel_breakdown(ours, f"decoder {name} {t} tokens")
    floor_ms = gc.layer_gemm_floor(t, b, length, h, ff, heads, cross=True)
    return gc.layer_row(f"decoder_{name}_fwd_bwd", (b, length, h, heads, ff), t, ours, eager,
                        floor_ms, layer.saved.numel() * layer.saved.element_size(),
                        lambda: torch_layer(tp, xt, mt, heads, False))


def main():
    args = gc.bench_args()
    rows = [run_case(*c, args.profile) for c in CASES]
    print(f"# {gc.device_name()}")
    print(gc.table(rows, gc.LAYER_COLUMNS))
    gc.save(rows, "gpu_decoder_layer", args.out)
    gc.chart(rows, "gpu_decoder_layer", args.out, "decoder layer fwd+bwd fp16, " + gc.device_name())


if __name__ == "__main__":
    main()
