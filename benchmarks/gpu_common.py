"""Timing and reporting shared by the GPU benchmarks (run on the GPU test machine).

Method: CUDA events around each call, warm-up first, median of many runs;
inputs rotate over enough buffer sets to exceed the L2 cache so every run
reads device memory; the copy bandwidth that turns bytes into a floor time is
measured in the same process.
"""
import json
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "gpu"))


def median_ms(fn, iters=30, warmup=5, inner=20):
    """Median over `iters` samples of the per-call time of `inner` back-to-back
    calls between two events: the queue stays full, so host-side dispatch
    (Python, pybind11, torch's dispatcher) overlaps device work instead of
    being timed as device idle time, for ours and the anchors alike."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(inner):
            fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / inner)
    times.sort()
    return times[len(times) // 2]


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


def save(rows, name, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"host": platform.node(), "rows": rows}, f, indent=1)
    return path


def chart(rows, name, out_dir, title):
    """Bar chart of ours vs torch vs bytes floor per case (ms, lower is better)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['name']}\n{r['dtype']} {r['shape']}" for r in rows]
    keys = [k for k in ("ours_ms", "torch_ms", "bytes_floor_ms") if all(k in r for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 4))
    w = 0.8 / len(keys)
    for j, k in enumerate(keys):
        ax.bar([i + j * w for i in range(len(rows))], [r[k] for r in rows], w, label=k)
    ax.set_xticks([i + w * (len(keys) - 1) / 2 for i in range(len(rows))])
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("ms (median)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, f"{name}.png")
    fig.savefig(path, dpi=110)
    return path


def table(rows, cols):
    out = [" | ".join(cols)]
    for r in rows:
        out.append(" | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    return "\n".join(out)
