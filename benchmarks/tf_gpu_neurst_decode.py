"""Beam search (beam 4, length penalty 0.6) through NeurST's own
SequenceGenerator on the GPU, accelerated (our decoding-step op per layer and
step, through the import hook) vs native NeurST, on one transformer-base
checkpoint and the demo's dev set (500 real sentences), float16.

Sentences/s come from NeurST's own "Generation elapsed" over the dev set
decoded once and K times over (the dev set repeated): the difference removes
what a run spends once (tracing the search, autotuning, the driver compiling
TF's PTX), so (K - 1) * 500 / (elapsed_K - elapsed_1) is the steady rate.

    python benchmarks/tf_gpu_neurst_decode.py [--model-dir DIR] [--train-steps 400] [--out DIR]

Without --model-dir the checkpoint is trained first (accelerated, as
tf_gpu_neurst_train.py does). Target (issue 16): >= 3x native.
"""
import os

import yaml

import tf_gpu_common as tc

TARGET = 3.0


def repeated_dev(corpus, out_dir, times):
    """The dev files repeated `times` over; NeurST dataset params for them."""
    params = dict(corpus["dev_dataset_params"])
    for key in ("src_file", "trg_file"):
        with open(params[key], encoding="utf-8") as f:
            text = f.read()
        path = os.path.join(out_dir, "dev%d.%s" % (times, key.split("_")[0]))
        with open(path, "w", encoding="utf-8") as f:
            f.write(text * times)
        params[key] = path
    return params


def main():
    a = tc.args_with((["--model-dir"], dict(default=None)),
                     (["--train-steps"], dict(type=int, default=400)),
                     (["--repeat"], dict(type=int, default=4)),
                     (["--batch"], dict(type=int, default=64, help="sentences per batch")),
                     (["--workdir"], dict(default="/tmp/tf_gpu_neurst_decode")))
    device = tc.require_gpu()
    from build_tools.tf_gpu import neurst_demo
    demo = neurst_demo.demo()
    work = a.workdir
    os.makedirs(work, exist_ok=True)
    corpus = neurst_demo.corpus(os.path.join(work, "corpus"))
    configs = demo.neurst_configs(work, corpus, "base", a.train_steps, batch_tokens=8192,
                                  summary_steps=50)
    model_dir = a.model_dir
    if not model_dir:
        model_dir = os.path.join(work, "model")
        print("== training transformer-base %d steps (accelerated)" % a.train_steps, flush=True)
        trained = tc.run_neurst(["--config_paths", configs["train"], "--model_dir", model_dir,
                                 "--dtype", "float16"], tc.neurst_env(work, True),
                                model_dir + ".log")
        tc.check_hook(trained, True)
    with open(configs["predict"]) as f:
        predict = yaml.safe_load(f)
    predict["task.params"]["batch_size"] = a.batch
    n = corpus["dev_pairs"]
    rows = []
    for run in ("accelerated", "native"):
        elapsed = {}
        for times in (1, a.repeat):
            cfg = dict(predict, **{"dataset.params": repeated_dev(corpus, work, times)})
            path = os.path.join(work, "predict_%s_%d.yml" % (run, times))
            with open(path, "w") as f:
                yaml.safe_dump(cfg, f, sort_keys=False)
            out = os.path.join(work, "decode_%s_%d" % (run, times))
            os.makedirs(out, exist_ok=True)
            print("== %s, dev set x%d" % (run, times), flush=True)
            result = tc.run_neurst(["--config_paths", path, "--model_dir", model_dir,
                                    "--dtype", "float16",
                                    "--output_file", os.path.join(out, "hypothesis.txt"),
                                    "--save_metric", os.path.join(out, "metric.json")],
                                   tc.neurst_env(work, run == "accelerated"), out + ".log")
            tc.check_hook(result, run == "accelerated")
            elapsed[times] = result["elapsed"]
        rate = (a.repeat - 1) * n / (elapsed[a.repeat] - elapsed[1])
        rows.append({"name": run, "sentences_per_s": rate, "elapsed_x1_s": elapsed[1],
                     "elapsed_x%d_s" % a.repeat: elapsed[a.repeat], "beam": 4,
                     "batch": a.batch, "dev_sentences": n, "device": device})
    rows[0]["x_native"] = rows[0]["sentences_per_s"] / rows[1]["sentences_per_s"]
    tc.write_json(rows, "tf_gpu_neurst_decode", a.out, target_x_native=TARGET,
                  model_dir=model_dir)
    cols = ["name", "sentences_per_s", "elapsed_x1_s", "elapsed_x%d_s" % a.repeat]
    print(tc.table(rows, cols))
    print("accelerated / native: %.2fx (target >= %.1fx)" % (rows[0]["x_native"], TARGET))
    tc.chart(rows, "tf_gpu_neurst_decode", a.out, "NeurST beam-4 decoding, " + device,
             keys=["sentences_per_s"], label=lambda r: r["name"], ylabel="sentences/s")


if __name__ == "__main__":
    main()
