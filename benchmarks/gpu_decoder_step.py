"""Incremental decoder step (cuda/layers/decoder_step.cc, fp16, inference):
transformer-base, batch 128 x beam 4 (512 rows), source length 64, one new
position per call after t-1 cached ones, t = 1..128 (static cache of 128).
Ours against the same step in PyTorch eager with a preallocated KV cache
(manual attention, and SDPA), the memory's keys/values cached once for all
three. Two timings each: `*_ms` with the queue kept full (what a caller
sees, host dispatch included: the eager anchors are launch-bound here) and
`*_graph_ms` replayed from a CUDA graph (device time alone). The last row is
the mean step over a whole 128-step decode.

    python3 benchmarks/gpu_decoder_step.py --out benchmarks/results
"""
import math

import torch
import torch.nn.functional as F

import gpu_common as gc
import ls_torch_layers as lt

DT = torch.float16
ROWS, SRC, CAP, H, HEADS, FF = 512, 64, 128, 512, 8, 2048
POSITIONS = [1, 32, 64, 128]


def torch_step(p, x, cache_k, cache_v, t, mem_k, mem_v, sdpa):
    """x [B, 1, H]; caches [B, heads, CAP, d] (PyTorch's natural layout),
    position t written; mem_k / mem_v [B, heads, S, d]."""
    b, _, h = x.shape
    d = h // HEADS

    def split(u):
        return u.view(b, 1, HEADS, d).transpose(1, 2)

    def attend(q, k, v):
        if sdpa:
            return F.scaled_dot_product_attention(q, k, v)
        return torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d)), -1) @ v

    def merge(u):
        return u.transpose(1, 2).reshape(b, 1, h)

    a = F.layer_norm(x, (h,), p["ln1_gamma"], p["ln1_beta"], 1e-6)
    q, k, v = (split(u) for u in (a @ p["qkv_kernel"] + p["qkv_bias"]).split(h, -1))
    cache_k[:, :, t:t + 1] = k
    cache_v[:, :, t:t + 1] = v
    ctx = attend(q, cache_k[:, :, :t + 1], cache_v[:, :, :t + 1])
    x = x + merge(ctx) @ p["out_kernel"] + p["out_bias"]
    a = F.layer_norm(x, (h,), p["ln2_gamma"], p["ln2_beta"], 1e-6)
    q = split(a @ p["q_kernel"] + p["q_bias"])
    x = x + merge(attend(q, mem_k, mem_v)) @ p["cross_out_kernel"] + p["cross_out_bias"]
    f = F.layer_norm(x, (h,), p["ln3_gamma"], p["ln3_beta"], 1e-6)
    f = torch.relu(f @ p["ffn1_kernel"] + p["ffn1_bias"])
    return x + f @ p["ffn2_kernel"] + p["ffn2_bias"]


def gemm_floor():
    mats = [(torch.randn(ROWS, k, dtype=DT, device="cuda"),
             torch.randn(k, n, dtype=DT, device="cuda"))
            for k, n in [(H, 3 * H), (H, H), (H, H), (H, H), (H, FF), (FF, H)]]

    def run():
        for a, w in mats:
            a @ w
    return gc.graph_ms(run)


def main():
    args = gc.bench_args()
    torch.manual_seed(0)
    p = lt.make_decoder_params(H, FF, DT)
    d = H // HEADS
    x = torch.randn(ROWS, 1, H, device="cuda", dtype=DT)
    y = torch.empty_like(x)
    memory = torch.randn(ROWS, SRC, H, device="cuda", dtype=DT)
    mem_lengths = torch.full((ROWS,), SRC, device="cuda", dtype=torch.int32)
    mem_k, mem_v = lt.memorize(p, memory, HEADS)  # [B, S, heads, d]
    keys = torch.randn(ROWS, CAP, HEADS, d, device="cuda", dtype=DT)
    values = torch.randn_like(keys)
    tk, tv = keys.transpose(1, 2).contiguous(), values.transpose(1, 2).contiguous()
    tmk, tmv = mem_k.transpose(1, 2).contiguous(), mem_v.transpose(1, 2).contiguous()
    step = lt.DecoderStep(ROWS, 1, CAP, SRC, H, HEADS, FF, True, "relu", DT)

    def ours(t):
        return lambda: step.forward(p, x, keys, values, t - 1, mem_k, mem_v, mem_lengths, out=y)

    def eager(t, sdpa=False):
        return lambda: torch_step(p, x, tk, tv, t - 1, tmk, tmv, sdpa)

    if args.profile:
        gc.kernel_breakdown(ours(64), "decoder step t=64")
    floor = gemm_floor()
    rows = []

    def record(name, t, fns, per_call, **timing):
        r = {"name": name, "dtype": "float16", "shape": [ROWS, t, SRC, H, HEADS, FF],
             "gemm_floor_ms": floor, "device": gc.device_name()}
        for label, fn in fns.items():
            r[label + "_ms"] = gc.median_ms(fn, **timing) / per_call
            r[label + "_graph_ms"] = gc.graph_ms(fn, iters=timing["iters"],
                                                 inner=timing["inner"]) / per_call
        for anchor, short in (("torch", "torch"), ("torch_sdpa", "sdpa")):
            r["speedup_vs_" + short] = r[anchor + "_ms"] / r["ours_ms"]
            r["graph_speedup_vs_" + short] = r[anchor + "_graph_ms"] / r["ours_graph_ms"]
        r["x_gemm_floor"] = r["ours_graph_ms"] / floor
        rows.append(r)

    for t in POSITIONS:
        record(f"decoder_step_base_t{t}", t, {"ours": ours(t), "torch": eager(t),
                                             "torch_sdpa": eager(t, True)}, 1, iters=20, inner=10)

    def decode(make):  # a whole 128-step decode, per step
        fns = [make(t) for t in range(1, CAP + 1)]

        def run():
            for f in fns:
                f()
        return run

    whole = {"ours": decode(ours), "torch": decode(eager),
             "torch_sdpa": decode(lambda t: eager(t, True))}
    record("decoder_step_base_mean_1..128", CAP, whole, CAP, iters=5, warmup=1, inner=1)

    print(f"# {gc.device_name()}")
    print(gc.table(rows, ["name", "ours_ms", "torch_ms", "torch_sdpa_ms", "ours_graph_ms",
                          "torch_graph_ms", "torch_sdpa_graph_ms", "gemm_floor_ms",
                          "speedup_vs_torch", "speedup_vs_sdpa", "graph_speedup_vs_torch",
                          "graph_speedup_vs_sdpa", "x_gemm_floor"]))
    gc.save(rows, "gpu_decoder_step", args.out)
    gc.chart(rows, "gpu_decoder_step", args.out,
             "decoder step fp16, base, 512 rows, src 64, " + gc.device_name())


if __name__ == "__main__":
    main()
