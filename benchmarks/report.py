"""Benchmark output shared by CPU and GPU benchmarks: a printed table, a JSON
record (one object per case) and a PNG bar chart."""
import json
import os
import platform


def save(rows, name, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"host": platform.node(), "rows": rows}, f, indent=1)
    return path


def chart(rows, name, out_dir, title, keys=None, label=None, ylabel="ms (median)"):
    """Bar chart per case: by default ours vs torch vs bytes floor (ms, lower
    is better); `keys` (row fields), `label` (row -> tick label) and `ylabel`
    for other measures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label(r) if label else f"{r['name']}\n{r['dtype']} {r['shape']}" for r in rows]
    keys = keys or [k for k in ("ours_ms", "torch_ms", "native_tf_ms", "bytes_floor_ms")
                    if all(k in r for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 4))
    w = 0.8 / len(keys)
    for j, k in enumerate(keys):
        ax.bar([i + j * w for i in range(len(rows))], [r.get(k) or 0 for r in rows], w, label=k)
    ax.set_xticks([i + w * (len(keys) - 1) / 2 for i in range(len(rows))])
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel(ylabel)
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
