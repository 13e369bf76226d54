"""Whole encoder layer fwd+bwd (cuda/layers, fp16, dropout 0.1, pre-LN relu):
ours vs PyTorch eager (manual attention), eager + SDPA and the GEMM-only
floor, all in the same run (the anchors of ../shared/DESIGN.md, rebuilt
here), plus the activation memory each keeps for its backward.

    python3 benchmarks/gpu_encoder_layer.py --out benchmarks/results
"""
import math

import torch
import torch.nn.functional as F

import gpu_common as gc
import ls_torch_layers as lt

DT = torch.float16
P = 0.1
CASES = [("big", 64, 64, 1024, 16, 4096), ("base", 64, 64, 512, 8, 2048),
         ("big", 256, 64, 1024, 16, 4096)]  # name, batch, len, hidden, heads, ffn


def torch_layer(p, x, heads, sdpa):
    b, length, h = x.shape
    d = h // heads
    a = F.layer_norm(x, (h,), p["ln1_gamma"], p["ln1_beta"], 1e-6)
    q, k, v = (u.view(b, length, heads, d).transpose(1, 2)
               for u in (a @ p["qkv_kernel"] + p["qkv_bias"]).split(h, -1))
    if sdpa:
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=P)
    else:
        s = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d))
        o = F.dropout(torch.softmax(s, -1), P) @ v
    x = x + F.dropout(o.transpose(1, 2).reshape(b, length, h) @ p["out_kernel"] + p["out_bias"], P)
    f = F.layer_norm(x, (h,), p["ln2_gamma"], p["ln2_beta"], 1e-6)
    f = F.dropout(torch.relu(f @ p["ffn1_kernel"] + p["ffn1_bias"]), P)
    return x + F.dropout(f @ p["ffn2_kernel"] + p["ffn2_bias"], P)


def run_case(name, b, length, h, heads, ff, profile):
    t = b * length
    p = lt.make_params(h, ff, DT)
    x = torch.randn(b, length, h, device="cuda", dtype=DT)
    dy = torch.randn_like(x)
    lengths = torch.full((b,), length, device="cuda", dtype=torch.int32)
    layer = lt.EncoderLayer(b, length, h, heads, ff, True, "relu", DT, P, P, P)
    y, dx = torch.empty_like(x), torch.empty_like(x)
    grads = {n: torch.empty_like(v) for n, v in p.items()}

    def ours():
        layer.forward(p, x, lengths, 11, out=y)
        layer.backward(p, x, lengths, dy, 11, out=(dx, grads))

    tp = {n: v.clone().requires_grad_() for n, v in p.items()}
    xt = x.clone().requires_grad_()

    def eager(sdpa=False):
        torch_layer(tp, xt, heads, sdpa).backward(dy)

    if profile:
        gc.kernel_breakdown(ours, f"encoder {name} {t} tokens")
    floor_ms = gc.layer_gemm_floor(t, b, length, h, ff, heads)
    return gc.layer_row(f"encoder_{name}_fwd_bwd", (b, length, h, heads, ff), t, ours, eager,
                        floor_ms, layer.saved.numel() * layer.saved.element_size(),
                        lambda: torch_layer(tp, xt, heads, False))


def main():
    args = gc.bench_args()
    rows = [run_case(*c, args.profile) for c in CASES]
    print(f"# {gc.device_name()}")
    print(gc.table(rows, gc.LAYER_COLUMNS))
    gc.save(rows, "gpu_encoder_layer", args.out)
    gc.chart(rows, "gpu_encoder_layer", args.out, "encoder layer fwd+bwd fp16, " + gc.device_name())


if __name__ == "__main__":
    main()
