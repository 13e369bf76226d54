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
