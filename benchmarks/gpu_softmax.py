"""Attention softmax (scale + key-padding mask + dropout) fwd+bwd: ours vs
PyTorch eager doing the same, and the bytes floor (read scores, write probs;
read dprobs + scores, write dscores).

    python3 benchmarks/gpu_softmax.py --out benchmarks/results
"""
import argparse
import os

import torch

import gpu_common as gc
import ls_torch

CASES = [(64, 8, 64, 64), (64, 8, 256, 256), (16, 16, 64, 64)]  # B, heads, Lq, Lk
RATE, SEED, SCALE = 0.1, 7, 0.125


def run_case(b, h, lq, lk, bw):
    dtype, es = torch.float16, 2
    shape = (b, h, lq, lk)
    lengths = torch.randint(lk // 2, lk + 1, (b,), device="cuda", dtype=torch.int32)
    nxt = gc.rotating(lambda: (torch.randn(shape, device="cuda", dtype=dtype),
                               torch.randn(shape, device="cuda", dtype=dtype)),
                      2 * b * h * lq * lk * es)
    y, dz = (torch.empty(shape, device="cuda", dtype=dtype) for _ in range(2))
    bias = torch.where(torch.arange(lk, device="cuda")[None, :] < lengths[:, None], 0.0,
                       -float("inf")).to(dtype)[:, None, None, :]

    def ours():
        s, g = nxt()
        ls_torch.attn_softmax(s, lengths, SCALE, False, RATE, SEED, out=y)
        ls_torch.attn_softmax_bwd(g, s, lengths, SCALE, False, RATE, SEED, out=dz)

    def eager():
        s, g = nxt()
        s = s.requires_grad_()
        p = torch.nn.functional.dropout(torch.softmax(s * SCALE + bias, -1), RATE)
        p.backward(g)
        s.requires_grad_(False)

    ours_ms, torch_ms = gc.median_ms(ours), gc.median_ms(eager)
    device_ms = gc.graph_ms(ours)  # small cases: median_ms times the host dispatch
    n = b * h * lq * lk
    floor_ms = 5 * n * es / bw * 1e3
    return {"name": "attn_softmax_fwd_bwd", "dtype": "float16", "shape": list(shape),
            "ours_ms": ours_ms, "ours_device_ms": device_ms, "torch_ms": torch_ms,
            "bytes_floor_ms": floor_ms, "speedup_vs_torch": torch_ms / ours_ms,
            "x_bytes_floor": ours_ms / floor_ms, "device_x_bytes_floor": device_ms / floor_ms,
            "device": gc.device_name(), "copy_bw_TBps": bw / 1e12}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    args = ap.parse_args()
    bw = gc.copy_bandwidth()
    rows = [run_case(*c, bw) for c in CASES]
    print(gc.table(rows, ["shape", "ours_ms", "ours_device_ms", "torch_ms", "bytes_floor_ms",
                          "speedup_vs_torch", "x_bytes_floor", "device_x_bytes_floor"]))
    gc.save(rows, "gpu_softmax", args.out)
    gc.chart(rows, "gpu_softmax", args.out, "attention softmax fwd+bwd, " + gc.device_name())


if __name__ == "__main__":
    main()
