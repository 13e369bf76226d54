"""NeurST's beam search on the CPU in float16 (NeurST's default --dtype) and
float32, natively and with our layers: why lightseq_tf's NeurST hook makes
an unset --dtype float32 where no GPU is visible
(lightseq_tf/integrations/neurst/compute_dtype.py).

NeurST's own CLI (SequenceGenerator, beam 4) decodes the first N dev
sentences of a trained demo run (examples/neurst/demo.py's workdir; the
checkpoint trained in float32) in each dtype and mode. Times: NeurST's own
"Generation elapsed" (the search over the N sentences, tracing included),
and the whole process; the median of --repeats runs, the four cases of a
size interleaved (the machine may be shared). With --onednn-verbose, the
float16 runs also count the oneDNN primitives that ran oneDNN's reference
(scalar) implementation.

    python benchmarks/cpu_neurst_decode_dtype.py [--workdir build/neurst_demo] [--sentences 64,500]
"""
import argparse
import os
import re
import statistics
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
    parser.add_argument("--sentences", default="64,500", help="comma-separated dev set sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--onednn-verbose", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir)
    model_dir = os.path.join(workdir, args.run)
    rows = []
    for n in [int(k) for k in args.sentences.split(",")]:
        configs = subset_config(workdir, n)
        cases = [(dtype, mode, accelerated) for dtype in ("float32", "float16")
                 for mode, accelerated in (("native_tf", False), ("ours", True))]
        runs = {case: [] for case in cases}
        for r in range(args.repeats):
            for dtype, mode, accelerated in cases:
                verbose = args.onednn_verbose and dtype == "float16" and r == 0
                os.environ.pop("ONEDNN_VERBOSE", None)
                if verbose:
                    os.environ["ONEDNN_VERBOSE"] = "1"
                tag = "bench%d_%s_%s_%d" % (n, dtype, mode, r)
                dec = demo.decode(model_dir, accelerated, configs, tag, dtype)
                os.environ.pop("ONEDNN_VERBOSE", None)
                if verbose:
                    dec["ref"] = reference_calls(os.path.join(model_dir, "decode_%s.log" % tag))
                runs[dtype, mode, accelerated].append(dec)
        by_dtype = {}
        for dtype in ("float32", "float16"):
            row = by_dtype[dtype] = {"name": "%d sentences" % n,
                                     "dtype": dtype, "shape": "beam 4",
                                     "checkpoint": "demo run %r" % args.run}
            for case in cases:
                if case[0] != dtype:
                    continue
                mode, decs = case[1], runs[case]
                row[mode + "_ms"] = 1000.0 * statistics.median(d["generation_seconds"]
                                                               for d in decs)
                row[mode + "_ms_all"] = [1000.0 * d["generation_seconds"] for d in decs]
                row[mode + "_process_s"] = statistics.median(d["decode_seconds"] for d in decs)
                row[mode + "_bleu"] = round(decs[0]["bleu"], 2)
                row[mode + "_load_1min"] = [d["load_1min"] for d in decs]
                if "ref" in decs[0]:
                    row[mode + "_onednn_ref_f16_calls"], row[mode + "_onednn_ref_f16_ms"] = \
                        decs[0]["ref"]
            row["speedup"] = round(row["native_tf_ms"] / row["ours_ms"], 2)
            rows.append(row)
        for mode in ("native_tf", "ours"):
            ratio = by_dtype["float16"][mode + "_ms"] / by_dtype["float32"][mode + "_ms"]
            by_dtype["float16"][mode + "_vs_float32"] = round(ratio, 2)
            print("%d sentences, %s: float16 search %.2fx float32's" % (n, mode, ratio))
        print(report.table([by_dtype["float32"], by_dtype["float16"]],
                           ["name", "dtype", "native_tf_ms", "ours_ms", "speedup"]), flush=True)
    name = "cpu_neurst_decode_dtype"
    print(report.save(rows, name, args.out))
    try:
        print(report.chart(rows, name, args.out, "NeurST beam search on CPU (demo model, dev "
                           "sentences), by --dtype: search time, median of %d" % args.repeats))
    except ImportError:
        print("(matplotlib not installed: no PNG)")


if __name__ == "__main__":
    main()
