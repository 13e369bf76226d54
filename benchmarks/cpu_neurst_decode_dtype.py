"""NeurST's beam search on the CPU in float16 (NeurST's default --dtype) and
float32, natively and with our layers: why lightseq_tf's NeurST hook makes
an unset --dtype float32 where no GPU is visible
(lightseq_tf/integrations/neurst/compute_dtype.py).

NeurST's own CLI (SequenceGenerator, beam 4) decodes the first N dev
sentences of a trained demo run (examples/neurst/demo.py's workdir; the
checkpoint trained in float32) in each dtype and mode. Times: NeurST's own
"Generation elapsed" (the search over the N sentences, tracing included),
and the whole process. With --onednn-verbose, the float16 runs also count
the oneDNN primitives that ran oneDNN's reference (scalar) implementation.

    python benchmarks/cpu_neurst_decode_dtype.py [--workdir build/neurst_demo] [--sentences 64]
"""
import argparse
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples", "neurst"))
import demo  # noqa: E402
import report  # noqa: E402

REF = re.compile(r"onednn_verbose,.*?,exec,cpu,([^,]+),(ref[^,]*),.*?f16.*,([\d.]+)$")


def subset_config(workdir, n):
    """predict.yml over the first n dev sentences (files next to it)."""
    with open(os.path.join(workdir, "predict.yml")) as f:
        cfg = yaml.safe_load(f)
    params = cfg["dataset.params"]
    for key in ("src_file", "trg_file"):
        with open(params[key], encoding="utf-8") as f:
            lines = f.read().splitlines()[:n]
        params[key] = os.path.join(workdir, "bench_dev%d.%s" % (n, key[:3]))
        with open(params[key], "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    path = os.path.join(workdir, "predict_%d.yml" % n)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return {"predict": path}


def reference_calls(log_path):
    """(count, total ms) of oneDNN reference-implementation executions on f16 data."""
    count, ms = 0, 0.0
    with open(log_path) as f:
        for line in f:
            m = REF.search(line.strip())
            if m:
                count, ms = count + 1, ms + float(m.group(3))
    return count, round(ms, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="build/neurst_demo")
    parser.add_argument("--run", default="accelerated", help="whose checkpoint")
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--onednn-verbose", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir)
    configs = subset_config(workdir, args.sentences)
    model_dir = os.path.join(workdir, args.run)
    rows = []
    for dtype in ("float32", "float16"):
        row = {"name": "NeurST beam 4, %d dev sentences" % args.sentences, "dtype": dtype,
               "shape": "demo '%s' model" % args.run}
        for mode, accelerated in (("native_tf", False), ("ours", True)):
            verbose = args.onednn_verbose and dtype == "float16"
            os.environ.pop("ONEDNN_VERBOSE", None)
            if verbose:
                os.environ["ONEDNN_VERBOSE"] = "1"
            tag = "bench_%s_%s" % (dtype, mode)
            dec = demo.decode(model_dir, accelerated, configs, tag, dtype)
            os.environ.pop("ONEDNN_VERBOSE", None)
            row[mode + "_ms"] = 1000.0 * dec["generation_seconds"]
            row[mode + "_process_s"] = dec["decode_seconds"]
            row[mode + "_bleu"] = round(dec["bleu"], 2)
            row[mode + "_load_1min"] = dec["load_1min"]
            if verbose:
                calls, ms = reference_calls(os.path.join(model_dir, "decode_%s.log" % tag))
                row[mode + "_onednn_ref_f16_calls"], row[mode + "_onednn_ref_f16_ms"] = calls, ms
        row["speedup"] = round(row["native_tf_ms"] / row["ours_ms"], 2)
        rows.append(row)
        print(report.table([row], [k for k in row]), flush=True)
    for mode in ("native_tf", "ours"):
        print("%s: float16 search %.1fx float32's" % (
            mode, rows[1][mode + "_ms"] / rows[0][mode + "_ms"]))
    name = "cpu_neurst_decode_dtype"
    print(report.save(rows, name, args.out))
    try:
        print(report.chart(rows, name, args.out, "NeurST beam search on CPU, by --dtype "
                           "(search time, lower is better)"))
    except ImportError:
        print("(matplotlib not installed: no PNG)")


if __name__ == "__main__":
    main()
