"""LayerNorm fwd+bwd: ours (harness) vs PyTorch eager, with the bytes floor.

Run on the GPU test machine after building the harness:
    python3 benchmarks/gpu_layer_norm.py --out benchmarks/results
"""
import argparse
import os

import torch

import gpu_common as gc
import ls_torch

CASES = [  # (tokens, hidden, dtype)
    (16384, 1024, torch.float16),
    (4096, 1024, torch.float16),
    (16384, 512, torch.float16),
    (16384, 1024, torch.bfloat16),
    (16384, 1024, torch.float32),
    (8192, 4096, torch.float16),
    (16384, 1023, torch.float16),  # unaligned: scalar path
]
# torch.compile (Inductor's fused Triton kernel) as a further anchor, where
# its compile time is worth it.
COMPILE_CASES = {(16384, 1024, torch.float16), (4096, 1024, torch.float16)}


def run_case(tokens, h, dtype, bw):
    es = torch.finfo(dtype).bits // 8
    eps = 1e-5

    def make():
        x = torch.randn(tokens, h, device="cuda", dtype=dtype)
        dy = torch.randn(tokens, h, device="cuda", dtype=dtype)
        return x, dy

    nxt = gc.rotating(make, 2 * tokens * h * es)
    g = torch.rand(h, device="cuda", dtype=dtype) + 0.5
    b = torch.randn(h, device="cuda", dtype=dtype)
    y = torch.empty(tokens, h, device="cuda", dtype=dtype)
    mean = torch.empty(tokens, device="cuda")
    rstd = torch.empty(tokens, device="cuda")
    dx = torch.empty_like(y)
    dg, db = torch.empty_like(g), torch.empty_like(g)
    x0, _ = nxt()
    ws = ls_torch.layer_norm_bwd_workspace(x0)

    def ours_fwd():
        x, _ = nxt()
        ls_torch.layer_norm_fwd(x, g, b, eps, out=(y, mean, rstd))

    def ours_both():
        x, dy = nxt()
        ls_torch.layer_norm_fwd(x, g, b, eps, out=(y, mean, rstd))
        ls_torch.layer_norm_bwd(dy, x, mean, rstd, g, workspace=ws, out=(dx, dg, db))

    gt = g.clone().requires_grad_()
    bt = b.clone().requires_grad_()

    def torch_both():
        x, dy = nxt()
        x = x.requires_grad_()
        out = torch.nn.functional.layer_norm(x, (h,), gt, bt, eps)
        out.backward(dy)
        x.requires_grad_(False)

    if PROFILE:
        gc.kernel_breakdown(ours_both, f"ours {tokens}x{h} {dtype}")
    fwd_ms = gc.median_ms(ours_fwd)
    ours_ms = gc.median_ms(ours_both)
    torch_ms = gc.median_ms(torch_both)
    extra = {}
    if (tokens, h, dtype) in COMPILE_CASES:
        ln = torch.compile(lambda x: torch.nn.functional.layer_norm(x, (h,), gt, bt, eps))

        def compiled_both():
            x, dy = nxt()
            x = x.requires_grad_()
            ln(x).backward(dy)
            x.requires_grad_(False)

        extra["torch_compile_ms"] = gc.median_ms(compiled_both)
        extra["speedup_vs_compile"] = extra["torch_compile_ms"] / ours_ms
    n = tokens * h
    # fwd: read x, write y (+ stats); bwd: read x, dy, write dx (+ stats read).
    bytes_moved = 5 * n * es + 4 * tokens * 4 + 4 * h * es
    floor_ms = bytes_moved / bw * 1e3
    return {
        "name": "layer_norm_fwd_bwd", "dtype": str(dtype).replace("torch.", ""),
        "shape": [tokens, h], "ours_ms": ours_ms, "ours_fwd_ms": fwd_ms,
        "ours_bwd_ms": ours_ms - fwd_ms, "torch_ms": torch_ms, "bytes_floor_ms": floor_ms,
        "speedup_vs_torch": torch_ms / ours_ms, "x_bytes_floor": ours_ms / floor_ms,
        "device": gc.device_name(), **extra,
    }


PROFILE = False


def main():
    global PROFILE
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    ap.add_argument("--profile", action="store_true", help="print per-kernel device times")
    args = ap.parse_args()
    PROFILE = args.profile
    bw = gc.copy_bandwidth()
    rows = [run_case(t, h, d, bw) for t, h, d in CASES]
    for r in rows:
        r["copy_bw_TBps"] = bw / 1e12
    print(f"# {gc.device_name()}; copy bandwidth {bw / 1e12:.2f} TB/s")
    print(gc.table(rows, ["dtype", "shape", "ours_ms", "ours_fwd_ms", "torch_ms",
                          "bytes_floor_ms", "speedup_vs_torch", "x_bytes_floor"]))
    for r in rows:
        if "torch_compile_ms" in r:
            print(f"torch.compile {r['dtype']} {r['shape']}: {r['torch_compile_ms']:.4f} ms, "
                  f"ours {r['speedup_vs_compile']:.2f}x faster")
    gc.save(rows, "gpu_layer_norm", args.out)
    gc.chart(rows, "gpu_layer_norm", args.out, "LayerNorm fwd+bwd, " + gc.device_name())


if __name__ == "__main__":
    main()
