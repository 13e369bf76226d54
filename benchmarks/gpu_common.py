"""Timing and reporting shared by the GPU benchmarks (run on the GPU test machine).

Method: CUDA events around each call, warm-up first, median of many runs;
inputs rotate over enough buffer sets to exceed the L2 cache so every run
reads device memory; the copy bandwidth that turns bytes into a floor time is
measured in the same process.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "gpu"))

from report import chart, save, table  # noqa: E402,F401  (re-exported for the gpu_* scripts)


def bench_args():
    """The gpu_* scripts' command line: --out DIR (default $OUT), --profile."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    ap.add_argument("--profile", action="store_true", help="print per-kernel device times")
    return ap.parse_args()


def median_ms(fn, iters=30, warmup=5, inner=20):
    """Median over `iters` samples of the per-call time of `inner` back-to-back
    calls between two events: the queue stays full, so host-side dispatch
    (Python, pybind11, torch's dispatcher) overlaps device work instead of
    being timed as device idle time, for ours and the anchors alike."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()

    def run():
        for _ in range(inner):
            fn()
    return _event_median_ms(run, iters, inner)


def _event_median_ms(run, iters, calls):
    """Median over `iters` samples of run()'s device time between two events, per call."""
    times = []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        run()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / calls)
    times.sort()
    return times[len(times) // 2]


def graph_ms(fn, iters=20, inner=20):
    """Device time per call: `inner` calls captured once in a CUDA graph and
    replayed, so no host dispatch is timed. For cases small enough that
    median_ms measures Python + pybind11 dispatch instead of the kernels
    (the launchers run on torch's current stream, which is the capture
    stream inside torch.cuda.graph)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    return _event_median_ms(graph.replay, iters, inner)


def rotating(make, nbytes_per_set):
    """Enough independent input sets that cycling through them defeats the L2."""
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    n = max(2, -(-3 * l2 // max(nbytes_per_set, 1)))
    sets = [make() for _ in range(min(n, 16))]
    state = {"i": 0}

    def next_set():
        state["i"] = (state["i"] + 1) % len(sets)
        return sets[state["i"]]

    return next_set


def layer_gemm_floor(t, b, length, h, ff, heads, cross=False, dtype=torch.float16):
    """Device time of every GEMM of one layer's fwd+bwd run back to back (the
    DESIGN.md GEMM-only floor: forward, data-gradient and weight-gradient
    product of each projection, and the attention's batched products),
    replayed from a CUDA graph: PyTorch spends ~35 us of host time per small
    batched matmul against ~6 us on the device, so timing them as called
    measures its dispatcher (0.45 ms instead of 0.10 ms for the decoder's
    twelve attention products), not the floor."""
    d = h // heads
    shapes = [(t, h, 3 * h), (t, h, h), (t, h, ff), (t, ff, h)]
    if cross:  # query projection, memory key/value projection, output projection
        shapes += [(t, h, h), (t, h, 2 * h), (t, h, h)]
    mats = [tuple(torch.randn(*s, dtype=dtype, device="cuda") for s in ((m, k), (k, n), (m, n)))
            for m, k, n in shapes]
    q = torch.randn(b * heads, length, d, dtype=dtype, device="cuda")
    kt = torch.randn(b * heads, d, length, dtype=dtype, device="cuda")
    pr = torch.randn(b * heads, length, length, dtype=dtype, device="cuda")

    def run():
        for a, w, g in mats:
            a @ w
            g @ w.t()
            a.t() @ g
        for _ in range(2 if cross else 1):
            q @ kt                   # scores
            pr @ q                   # context
            pr @ q                   # dP = dctx V^T (same shape class)
            pr.transpose(1, 2) @ q   # dV
            pr @ q                   # dQ
            pr.transpose(1, 2) @ q   # dK
    return graph_ms(run, iters=20, inner=3)


def layer_row(name, shape, tokens, ours, eager, floor_ms, ours_saved_bytes, torch_forward):
    """One whole-layer benchmark row: ours as called (CUDA events around
    back-to-back calls) and in device time (graph replay), PyTorch eager and
    eager + SDPA as called (`eager(sdpa)` runs fwd+bwd), their ratios, the
    ratio to the GEMM floor (conservatively: ours as called over the floor's
    device time, and device time over device time), and the activation
    memory each keeps for the backward (torch: allocated growth across
    `torch_forward()` with autograd recording)."""
    ours_ms = median_ms(ours, iters=20, inner=3)
    ours_graph = graph_ms(ours, iters=20, inner=3)
    eager_ms = median_ms(lambda: eager(False), iters=20, inner=3)
    sdpa_ms = median_ms(lambda: eager(True), iters=20, inner=3)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    out = torch_forward()
    torch.cuda.synchronize()
    torch_saved = torch.cuda.memory_allocated() - base
    del out
    return {"name": name, "dtype": "float16", "shape": list(shape), "tokens": tokens,
            "ours_ms": ours_ms, "ours_graph_ms": ours_graph, "torch_ms": eager_ms,
            "torch_sdpa_ms": sdpa_ms, "gemm_floor_ms": floor_ms,
            "speedup_vs_torch": eager_ms / ours_ms, "speedup_vs_sdpa": sdpa_ms / ours_ms,
            "x_gemm_floor": ours_ms / floor_ms, "x_gemm_floor_device": ours_graph / floor_ms,
            "ours_saved_MB": ours_saved_bytes / 2**20, "torch_saved_MB": torch_saved / 2**20,
            "device": device_name()}


LAYER_COLUMNS = ["name", "tokens", "ours_ms", "ours_graph_ms", "torch_ms", "torch_sdpa_ms",
                 "gemm_floor_ms", "speedup_vs_torch", "speedup_vs_sdpa", "x_gemm_floor",
                 "x_gemm_floor_device", "ours_saved_MB", "torch_saved_MB"]


def copy_bandwidth():
    """Device-to-device copy rate in bytes/s, counting bytes read plus written."""
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    ms = median_ms(lambda: b.copy_(a), iters=10, warmup=3, inner=5)
    del a, b
    torch.cuda.empty_cache()
    return 2 * n / (ms / 1e3)


def device_name():
    p = torch.cuda.get_device_properties(0)
    return f"{p.name} ({p.multi_processor_count} SMs), torch {torch.__version__}"


def kernel_breakdown(fn, label, iters=20):
    """Per-kernel average device time (us) of fn, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    print(f"-- kernels: {label}")
    for ev in prof.key_averages():
        if ev.device_type == torch.autograd.DeviceType.CUDA or getattr(ev, "device_time_total", 0):
            dt = getattr(ev, "device_time_total", 0) / max(ev.count, 1)
            if dt > 0:
                print(f"   {dt:8.2f} us x{ev.count // iters:<3d} {ev.key[:90]}")
