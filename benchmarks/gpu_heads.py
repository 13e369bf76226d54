"""QKV head split (+ bias) and head merge, fp16: ours vs PyTorch eager
((x + b).view().permute().contiguous()), and the bytes floor.

    python3 benchmarks/gpu_heads.py --out benchmarks/results
"""
import argparse
import os

import torch

import gpu_common as gc
import ls_torch

CASES = [(64, 64, 16, 3, 64), (16, 256, 16, 3, 64), (64, 64, 8, 1, 64)]  # B, L, heads, splits, d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    args = ap.parse_args()
    bw = gc.copy_bandwidth()
    rows = []
    for b, l, h, n, d in CASES:
        w = n * h * d
        nxt = gc.rotating(lambda: torch.randn(b, l, w, device="cuda", dtype=torch.float16),
                          2 * b * l * w * 2)
        bias = torch.randn(w, device="cuda", dtype=torch.float16)
        out = torch.empty(n, b, h, l, d, device="cuda", dtype=torch.float16)
        back = torch.empty(b, l, w, device="cuda", dtype=torch.float16)
        floor = 2 * b * l * w * 2 / bw * 1e3
        for name, ours, eager in [
            ("split_heads_bias", lambda: ls_torch.split_heads(nxt(), bias, h, n, out=out),
             lambda: (nxt() + bias).view(b, l, n, h, d).permute(2, 0, 3, 1, 4).contiguous()),
            ("merge_heads", lambda: ls_torch.merge_heads(out, out=back),
             lambda: out.permute(1, 3, 0, 2, 4).reshape(b, l, w).contiguous()),
        ]:
            o, t = gc.median_ms(ours), gc.median_ms(eager)
            rows.append({"name": name, "dtype": "float16", "shape": [b, l, h, n, d], "ours_ms": o,
                         "torch_ms": t, "bytes_floor_ms": floor, "speedup_vs_torch": t / o,
                         "x_bytes_floor": o / floor, "device": gc.device_name(),
                         "copy_bw_TBps": bw / 1e12})
    print(gc.table(rows, ["name", "shape", "ours_ms", "torch_ms", "bytes_floor_ms",
                          "speedup_vs_torch", "x_bytes_floor"]))
    gc.save(rows, "gpu_heads", args.out)
    gc.chart(rows, "gpu_heads", args.out, "head split/merge, " + gc.device_name())


if __name__ == "__main__":
    main()
