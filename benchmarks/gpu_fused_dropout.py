"""Dropout family at 16M elements (fp16): achieved bandwidth vs the device
copy bandwidth (target >= 80%), and PyTorch eager doing the same math.

    python3 benchmarks/gpu_fused_dropout.py --out benchmarks/results
"""

import torch
import torch.nn.functional as F

import gpu_common as gc
import ls_torch

ROWS, H = 16384, 1024
RATE, SEED = 0.1, 1234


def main():
    args = gc.bench_args()
    bw = gc.copy_bandwidth()
    rows = []
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        es = torch.finfo(dtype).bits // 8
        n = ROWS * H

        def make():
            return [torch.randn(ROWS, H, device="cuda", dtype=dtype) for _ in range(3)]

        nxt = gc.rotating(make, 3 * n * es)
        b = torch.randn(H, device="cuda", dtype=dtype)
        y = torch.empty(ROWS, H, device="cuda", dtype=dtype)
        dx = torch.empty_like(y)
        db = torch.empty_like(b)
        ws = torch.empty(max(ls_torch.lc.bias_act_dropout_bwd_workspace_bytes(
            ls_torch.DTYPES[dtype], ROWS, H), 1), dtype=torch.uint8, device="cuda")
        cases = {  # name: (ours, torch eager, bytes moved)
            "dropout_fwd": (lambda: ls_torch.dropout(nxt()[0], RATE, SEED, out=y),
                            lambda: F.dropout(nxt()[0], RATE), 2 * n * es),
            "bias_dropout_residual_fwd": (
                lambda: (lambda t: ls_torch.bias_dropout_residual(t[0], b, t[1], RATE, SEED,
                                                                  out=y))(nxt()),
                lambda: (lambda t: t[1] + F.dropout(t[0] + b, RATE))(nxt()), 3 * n * es),
            "bias_dropout_residual_bwd": (
                lambda: ls_torch.bias_dropout_residual_bwd(nxt()[0], RATE, SEED, workspace=ws,
                                                           out=(dx, db)),
                None, 2 * n * es),
            "bias_relu_dropout_fwd": (
                lambda: ls_torch.bias_act_dropout(nxt()[0], b, RATE, SEED, "relu", out=y),
                lambda: F.dropout(torch.relu(nxt()[0] + b), RATE), 2 * n * es),
            "bias_gelu_dropout_fwd": (
                lambda: ls_torch.bias_act_dropout(nxt()[0], b, RATE, SEED, "gelu", out=y),
                lambda: F.dropout(F.gelu(nxt()[0] + b), RATE), 2 * n * es),
            "bias_gelu_dropout_bwd": (
                lambda: (lambda t: ls_torch.bias_act_dropout_bwd(t[0], t[1], b, RATE, SEED,
                                                                 "gelu", workspace=ws,
                                                                 out=(dx, db)))(nxt()),
                None, 3 * n * es),
        }
        # Torch eager fwd+bwd of the FFN epilogue, for the layer-level picture.
        bt = b.clone().requires_grad_()

        def torch_gelu_fwd_bwd():
            t = nxt()
            xx = t[0].requires_grad_()
            F.dropout(F.gelu(xx + bt), RATE).backward(t[1])
            xx.requires_grad_(False)

        def ours_gelu_fwd_bwd():
            t = nxt()
            ls_torch.bias_act_dropout(t[0], b, RATE, SEED, "gelu", out=y)
            ls_torch.bias_act_dropout_bwd(t[1], t[0], b, RATE, SEED, "gelu", workspace=ws,
                                          out=(dx, db))

        for name, (ours, ref, nbytes) in cases.items():
            if args.profile:
                gc.kernel_breakdown(ours, f"{name} {dtype}")
            ms = gc.median_ms(ours)
            row = {"name": name, "dtype": str(dtype).replace("torch.", ""), "shape": [ROWS, H],
                   "ours_ms": ms, "bytes_floor_ms": nbytes / bw * 1e3,
                   "pct_of_copy_bw": 100 * nbytes / (ms / 1e3) / bw, "device": gc.device_name()}
            if ref is not None:
                row["torch_ms"] = gc.median_ms(ref)
                row["speedup_vs_torch"] = row["torch_ms"] / ms
            rows.append(row)
        ours_ms = gc.median_ms(ours_gelu_fwd_bwd)
        torch_ms = gc.median_ms(torch_gelu_fwd_bwd)
        rows.append({"name": "bias_gelu_dropout_fwd_bwd", "dtype": str(dtype).replace("torch.", ""),
                     "shape": [ROWS, H], "ours_ms": ours_ms, "torch_ms": torch_ms,
                     "speedup_vs_torch": torch_ms / ours_ms,
                     "bytes_floor_ms": 5 * n * es / bw * 1e3,
                     "pct_of_copy_bw": 100 * 5 * n * es / (ours_ms / 1e3) / bw,
                     "device": gc.device_name()})
    for r in rows:
        r["copy_bw_TBps"] = bw / 1e12
    print(f"# {gc.device_name()}; copy bandwidth {bw / 1e12:.2f} TB/s")
    print(gc.table(rows, ["name", "dtype", "ours_ms", "bytes_floor_ms", "pct_of_copy_bw"]))
    for r in rows:
        if "torch_ms" in r:
            print(f"{r['name']:28s} {r['dtype']:9s} torch eager {r['torch_ms']:.4f} ms -> "
                  f"ours {r['speedup_vs_torch']:.2f}x")
    gc.save(rows, "gpu_fused_dropout", args.out)
    gc.chart([r for r in rows if "torch_ms" in r], "gpu_fused_dropout", args.out,
             "dropout family, 16M elements, " + gc.device_name())


if __name__ == "__main__":
    main()
