"""Label-smoothed cross-entropy fwd+bwd (V=32000): ours vs PyTorch eager
F.cross_entropy(label_smoothing=...) and its bytes floor.

    python3 benchmarks/gpu_cross_entropy.py --out benchmarks/results
"""

import torch
import torch.nn.functional as F

import gpu_common as gc
import ls_torch

CASES = [(4096, 32000, torch.float16), (16384, 32000, torch.float16),
         (4096, 32000, torch.bfloat16), (4096, 32000, torch.float32), (2048, 256000, torch.float16)]
EPS = 0.1


def run_case(n, v, dtype, bw, profile):
    es = torch.finfo(dtype).bits // 8
    targets = torch.randint(1, v, (n,), device="cuda")

    def make():
        return torch.randn(n, v, device="cuda", dtype=dtype)

    nxt = gc.rotating(make, n * v * es)
    f32 = dict(dtype=torch.float32, device="cuda")
    loss, nll, lse = (torch.empty(n, **f32) for _ in range(3))
    sums = torch.empty(3, **f32)
    dl = torch.empty(n, v, device="cuda", dtype=dtype)
    ones, zeros = torch.ones(n, **f32) / n, torch.zeros(n, **f32)

    def ours():
        z = nxt()
        ls_torch.cross_entropy(z, targets, EPS, 0, out=(loss, nll, lse, sums))
        ls_torch.cross_entropy_bwd(ones, zeros, z, targets, lse, nll, EPS, 0, out=dl)

    def eager():
        z = nxt().requires_grad_()
        F.cross_entropy(z, targets, label_smoothing=EPS, ignore_index=0).backward()
        z.requires_grad_(False)

    if profile:
        gc.kernel_breakdown(ours, f"ce {n}x{v} {dtype}")
    ours_ms = gc.median_ms(ours, iters=20, inner=5)
    torch_ms = gc.median_ms(eager, iters=20, inner=5)
    floor_ms = 3 * n * v * es / bw * 1e3  # read logits twice, write dlogits once
    return {"name": "cross_entropy_fwd_bwd", "dtype": str(dtype).replace("torch.", ""),
            "shape": [n, v], "ours_ms": ours_ms, "torch_ms": torch_ms, "bytes_floor_ms": floor_ms,
            "speedup_vs_torch": torch_ms / ours_ms, "x_bytes_floor": ours_ms / floor_ms,
            "device": gc.device_name(), "copy_bw_TBps": bw / 1e12}


def main():
    args = gc.bench_args()
    bw = gc.copy_bandwidth()
    rows = [run_case(n, v, d, bw, args.profile) for n, v, d in CASES]
    print(f"# {gc.device_name()}; copy bandwidth {bw / 1e12:.2f} TB/s")
    print(gc.table(rows, ["dtype", "shape", "ours_ms", "torch_ms", "bytes_floor_ms",
                          "speedup_vs_torch", "x_bytes_floor"]))
    gc.save(rows, "gpu_cross_entropy", args.out)
    gc.chart(rows, "gpu_cross_entropy", args.out, "label-smoothed CE fwd+bwd, " + gc.device_name())


if __name__ == "__main__":
    main()
