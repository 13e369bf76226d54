"""What the benchmarks/tf_gpu_* scripts share: the GPU requirement, NeurST CLI
runs with their speed, token and peak-memory readings, and the records
(report.py's table + JSON + PNG). They run where TensorFlow's GPU build sees
a GPU (build_tools/tf_gpu_check.sh on the GPU test machine) and exit with a
message elsewhere."""
import argparse
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

from report import chart, save, table  # noqa: E402,F401  (re-exported)


def args_with(*extra):
    """--out DIR (default $OUT or benchmarks/results) plus the script's own
    options, given as (flags, kwargs) pairs."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", os.path.join(HERE, "results")))
    for flags, kw in extra:
        ap.add_argument(*flags, **kw)
    return ap.parse_args()


def require_gpu():
    """TensorFlow's description of its GPU, or exit 2 saying why not."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        sys.exit("%s: TensorFlow %s lists no GPU here (built with CUDA %s). These benchmarks "
                 "measure TensorFlow's GPU build on a GPU: run them on the GPU test machine "
                 "through build_tools/tf_gpu_check.sh." % (
                     os.path.basename(sys.argv[0]), tf.__version__,
                     tf.sysconfig.get_build_info().get("cuda_version")))
    details = tf.config.experimental.get_device_details(gpus[0])
    return "%s (TF %s)" % (details.get("device_name", "GPU"), tf.__version__)


# -- NeurST's CLI ----------------------------------------------------------

PEAK = re.compile(r"lightseq_tf_bench: peak_gpu_bytes=(\d+)")
METRIC = re.compile(r"'(\w+)': (?:np\.float\d+\()?([-\d.e+naninf]+)")
ELAPSED = re.compile(r"Generation elapsed: ([\d.]+)s")
# Each NeurST process of a benchmark starts with this sitecustomize: it arms
# our NeurST hook (what the installed package's .pth does) and reports
# TensorFlow's peak GPU memory in use at exit (the BFC allocator's peak, not
# what it reserved).
SITECUSTOMIZE = """
import lightseq_tf_neurst_hook
lightseq_tf_neurst_hook.install()
import atexit, sys
def _peak():
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            print("lightseq_tf_bench: peak_gpu_bytes=%d" % peak, flush=True)
        except Exception as e:
            print("lightseq_tf_bench: no GPU memory reading (%s)" % e, flush=True)
atexit.register(_peak)
"""


def neurst_env(workdir, accelerated, **extra):
    site = os.path.join(workdir, "site")
    os.makedirs(site, exist_ok=True)
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="1",
               LIGHTSEQ_TF_NEURST="1" if accelerated else "0")
    env["PYTHONPATH"] = os.pathsep.join([site, ROOT] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(extra)
    return env


def run_neurst(args, env, log_path):
    """Runs `python -m neurst.cli.run_exp ARGS` in the log's folder (the
    demo's runner); returns {seconds, metrics: [{step, ...}], peak_bytes,
    elapsed, hook, lines}. Raises with the log's tail if it fails."""
    from build_tools.tf_gpu import neurst_demo

    def show(line):
        if "lightseq_tf:" in line or "Update " in line or "elapsed" in line:
            return "    " + line.rstrip()[:160]
        return None

    t0 = time.time()
    lines = neurst_demo.demo()._run([sys.executable, "-m", "neurst.cli.run_exp"] + args, env,
                                    log_path, show)
    metrics = [{k: float(v) for k, v in METRIC.findall(line)} for line in lines
               if "{'step':" in line]
    peak = [int(m.group(1)) for m in map(PEAK.search, lines) if m]
    elapsed = [float(m.group(1)) for m in map(ELAPSED.search, lines) if m]
    hook = [line.strip() for line in lines if "lightseq_tf: NeurST acceleration" in line]
    return {"seconds": time.time() - t0, "metrics": metrics, "peak_bytes": peak[-1] if peak else None,
            "elapsed": elapsed[-1] if elapsed else None, "hook": hook[0] if hook else None,
            "lines": lines}


def check_hook(result, accelerated):
    want = "acceleration on" if accelerated else "acceleration off"
    if not result["hook"] or want not in result["hook"]:
        raise RuntimeError("expected NeurST %s, the hook said: %s" % (want, result["hook"]))


def write_json(rows, name, out_dir, **meta):
    os.makedirs(out_dir, exist_ok=True)
    path = save(rows, name, out_dir)
    with open(path) as f:
        record = json.load(f)
    record.update(meta)
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    return path
