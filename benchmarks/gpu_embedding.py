"""Embedding fwd+bwd (lookup * sqrt(H) + sinusoid + dropout, dense table
gradient): ours vs PyTorch eager (F.embedding + positions + F.dropout, its
autograd dense backward) and the bytes floor. Ids uniform or Zipf(1)
distributed: Zipf puts ~9% of the tokens on one id (the backward's longest
run, summed by one thread block).

    python3 benchmarks/gpu_embedding.py --out benchmarks/results
"""
import math

import torch
import torch.nn.functional as F

import gpu_common as gc
import ls_torch

VOCAB = 32000
RATE = 0.1
CASES = [(64, 64, 512, torch.float16, "uniform"), (64, 64, 1024, torch.float16, "uniform"),
         (64, 64, 1024, torch.float16, "zipf"), (256, 64, 1024, torch.float16, "zipf"),
         (64, 64, 1024, torch.bfloat16, "zipf"), (64, 64, 1024, torch.float32, "zipf")]


def make_ids(b, l, dist):
    if dist == "uniform":
        return torch.randint(0, VOCAB, (b, l), device="cuda", dtype=torch.int32)
    p = 1.0 / torch.arange(1, VOCAB + 1, device="cuda", dtype=torch.float64)
    return torch.multinomial(p / p.sum(), b * l, replacement=True).view(b, l).int()


def sinusoid(l, h):
    pos = torch.arange(l, device="cuda", dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(h // 2, device="cuda", dtype=torch.float32)
                    * -(math.log(1e4) / (h // 2 - 1)))
    return torch.cat([torch.sin(pos * inv), torch.cos(pos * inv)], 1)


def run_case(b, l, h, dtype, dist, bw, profile):
    es = torch.finfo(dtype).bits // 8
    ids = make_ids(b, l, dist)
    table = torch.randn(VOCAB, h, device="cuda")  # float32 variable, mixed precision
    dy = torch.randn(b, l, h, device="cuda", dtype=dtype)
    y = torch.empty(b, l, h, device="cuda", dtype=dtype)
    dt = torch.empty_like(table)
    ws = ls_torch.embedding_bwd_workspace(ids, VOCAB, h)
    scale = h ** 0.5
    pe = sinusoid(l, h)

    def ours():
        ls_torch.embedding_fwd(ids, table, scale, seed=1, rate=RATE, dtype=dtype, out=y)
        ls_torch.embedding_bwd(dy, ids, VOCAB, torch.float32, scale, seed=1, rate=RATE,
                               workspace=ws, out=dt)

    def eager():
        t = table.detach().requires_grad_()
        x = (F.embedding(ids, t) * scale + pe).to(dtype)
        F.dropout(x, RATE).backward(dy)

    if profile:
        gc.kernel_breakdown(ours, f"embedding {b}x{l}x{h} {dtype} {dist}")
    ours_ms = gc.median_ms(ours, iters=20, inner=5)
    torch_ms = gc.median_ms(eager, iters=20, inner=5)
    n = b * l
    # fwd: gather fp32 rows, write y; bwd: read dy, write the dense fp32 table.
    floor_ms = (n * h * (4 + 2 * es) + VOCAB * h * 4) / bw * 1e3
    return {"name": f"embedding_fwd_bwd_{dist}", "dtype": str(dtype).replace("torch.", ""),
            "shape": [b, l, h, VOCAB], "ours_ms": ours_ms, "torch_ms": torch_ms,
            "bytes_floor_ms": floor_ms, "speedup_vs_torch": torch_ms / ours_ms,
            "x_bytes_floor": ours_ms / floor_ms, "device": gc.device_name(),
            "copy_bw_TBps": bw / 1e12}


def main():
    args = gc.bench_args()
    bw = gc.copy_bandwidth()
    rows = [run_case(*c, bw, args.profile) for c in CASES]
    print(f"# {gc.device_name()}; copy bandwidth {bw / 1e12:.2f} TB/s")
    print(gc.table(rows, ["name", "dtype", "shape", "ours_ms", "torch_ms", "bytes_floor_ms",
                          "speedup_vs_torch", "x_bytes_floor"]))
    gc.save(rows, "gpu_embedding", args.out)
    gc.chart(rows, "gpu_embedding", args.out, "embedding fwd+bwd, " + gc.device_name())


if __name__ == "__main__":
    main()
