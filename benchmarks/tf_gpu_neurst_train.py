"""NeurST training through its own CLI on the GPU, as users run it: the demo
corpus (real English->German text), 8192 tokens per batch, NeurST's float16
mixed precision, transformer-base or transformer-big (6 + 6 layers).
Accelerated (our layers, fused CE, LSAdam through the import hook) vs native
NeurST, and for big also native with XLA auto-clustering
(TF_XLA_FLAGS=--tf_xla_auto_jit=2). Throughput is NeurST's own count of
non-padding source + target tokens per second over its summary intervals
after the warm-up (graph building, autotuning, the driver compiling TF's PTX
for sm_90); peak GPU memory is TensorFlow's allocator peak in use.

    python benchmarks/tf_gpu_neurst_train.py --model base [--steps 300] [--out DIR]

One table per model: tf_gpu_neurst_train_<model>.json / .png. Targets
(issue 16): big >= 2.0x native and >= 1.3x native+XLA; base >= 2.5x native.
Each run's record is written as soon as it ends (a 10-minute device call
that runs out keeps what finished).
"""
import os

import tf_gpu_common as tc

RUNS = {"base": ["accelerated", "native"], "big": ["accelerated", "native", "native_xla"]}
STEPS = {"base": 300, "big": 200}
TARGETS = {"base": {"native": 2.5}, "big": {"native": 2.0, "native_xla": 1.3}}


def steady(metrics, warmup):
    """Mean tokens/s and s/step over the summary intervals after `warmup` steps."""
    after = [m for m in metrics if m.get("step", 0) > warmup and "src_real_tokens_per_sec" in m]
    if not after:
        return None
    n = len(after)
    return {"tokens_per_s": sum(m["src_real_tokens_per_sec"] + m["trg_real_tokens_per_sec"]
                                for m in after) / n,
            "trg_tokens_per_s": sum(m["trg_real_tokens_per_sec"] for m in after) / n,
            "tokens_per_step": sum(m["src_real_tokens_per_step"] + m["trg_real_tokens_per_step"]
                                   for m in after) / n,
            "intervals": n, "last_loss": after[-1].get("loss")}


def main():
    a = tc.args_with((["--model"], dict(choices=sorted(RUNS), required=True)),
                     (["--steps"], dict(type=int, default=None)),
                     (["--warmup"], dict(type=int, default=100)),
                     (["--summary"], dict(type=int, default=25)),
                     (["--batch-tokens"], dict(type=int, default=8192)),
                     (["--runs"], dict(default=None, help="comma-separated subset of the runs")),
                     (["--workdir"], dict(default="/tmp/tf_gpu_neurst_train")))
    device = tc.require_gpu()
    from build_tools.tf_gpu import neurst_demo
    demo = neurst_demo.demo()
    steps = a.steps or STEPS[a.model]
    work = os.path.join(a.workdir, a.model)
    os.makedirs(work, exist_ok=True)
    corpus = neurst_demo.corpus(os.path.join(a.workdir, "corpus"))
    configs = demo.neurst_configs(work, corpus, a.model, steps, batch_tokens=a.batch_tokens,
                                  summary_steps=a.summary)
    print("# %s, NeurST transformer-%s, corpus %s, %d steps, %d tokens/batch"
          % (device, a.model, corpus["source"], steps, a.batch_tokens), flush=True)
    rows = []
    for run in (a.runs.split(",") if a.runs else RUNS[a.model]):
        accelerated = run == "accelerated"
        extra = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2"} if run.endswith("_xla") else {}
        model_dir = os.path.join(work, run)
        print("== %s" % run, flush=True)
        result = tc.run_neurst(["--config_paths", configs["train"], "--model_dir", model_dir,
                                "--dtype", "float16"],
                               tc.neurst_env(work, accelerated, **extra), model_dir + ".log")
        tc.check_hook(result, accelerated)
        speed = steady(result["metrics"], a.warmup) or {}
        rows.append(dict(name=run, model=a.model, steps=steps, batch_tokens=a.batch_tokens,
                         peak_gpu_GiB=(result["peak_bytes"] or 0) / 2**30,
                         wall_s=round(result["seconds"], 1), device=device, **speed))
        for r in rows:  # ratios against each baseline present
            for base in ("native", "native_xla"):
                b = next((x for x in rows if x["name"] == base and x.get("tokens_per_s")), None)
                if b and r.get("tokens_per_s"):
                    r["x_" + base] = r["tokens_per_s"] / b["tokens_per_s"]
        name = "tf_gpu_neurst_train_" + a.model
        tc.write_json(rows, name, a.out, targets=TARGETS[a.model], warmup_steps=a.warmup)
    cols = ["name", "tokens_per_s", "trg_tokens_per_s", "tokens_per_step", "peak_gpu_GiB",
            "wall_s"] + [c for c in ("x_native", "x_native_xla") if any(c in r for r in rows)]
    print(tc.table([{c: r.get(c, "") for c in cols} for r in rows], cols))
    acc = next((r for r in rows if r["name"] == "accelerated"), {})
    for base, target in TARGETS[a.model].items():
        got = acc.get("x_" + base)
        print("target accelerated >= %.1fx %s: %s" % (target, base, "%.2fx" % got if got else "n/a"))
    tc.chart(rows, name, a.out, "NeurST transformer-%s training, %s" % (a.model, device),
             keys=["tokens_per_s"], label=lambda r: r["name"], ylabel="tokens/s (src + trg)")


if __name__ == "__main__":
    main()
