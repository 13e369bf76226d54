"""The README's main job: NeurST trains a small Transformer on real
English->German text, decodes the dev set with beam search and scores BLEU,
once with our layers and once natively, from the same initial weights.

    python examples/neurst/demo.py [--workdir DIR] [--steps N]
    (bash build_tools/neurst_demo.sh: the same after installing everything)

Everything NeurST does here is NeurST's own CLI (`python -m
neurst.cli.run_exp`) on configs this script writes; our package changes it
only through the import hook (LIGHTSEQ_TF_NEURST=1 for the accelerated run,
=0 for the native one), so NeurST and this package must be installed (the
package's .pth arms the hook). Data: demo_corpus, next to this file (gettext
catalogs of this machine, or a generated corpus where there are none).
Training and decoding compute in --dtype (float32: what a CPU runs fast;
NeurST's own default, float16, is for GPUs). Prints tables and writes
results.json in the workdir.

Decoding: each function in DECODERS decodes every trained run's checkpoint
on the dev set and returns its BLEU, timings and hypotheses; they land in
results.json under runs[i]["decodes"][name]. A new decoder is one function
and one DECODERS entry.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import yaml

import demo_corpus  # this folder (on sys.path when run as a script)

# A small Transformer that learns something in minutes on 2 CPU cores.
MODELS = {
    "tiny": dict(dim=64, layers=2, heads=4, ffn=128),   # CI's end-to-end test
    "small": dict(dim=128, layers=2, heads=4, ffn=512),   # the demo
}
UPDATE = re.compile(r"Update (\d+)\tTrainingLoss=([\d.naninf]+)\tSpeed ([\d.]+) secs/step")
METRICS = re.compile(r"\{'step': (\d+).*?'loss': ([-\d.e+naninf]+)")
GENERATION = re.compile(r"Generation elapsed: ([\d.]+)s")  # NeurST's SequenceGenerator
# The dev set's beam search (every decoder's): NeurST's search_method.params.
SEARCH = {"beam_size": 4, "length_penalty": 0.6, "extra_decode_length": 10}
DTYPE = "float32"


def neurst_configs(workdir, corpus, model, steps, batch_tokens=2048, dropout=0.1,
                   summary_steps=50, shuffle_buffer=None, save_steps=None):
    """Writes train.yml and predict.yml (NeurST's own config format).
    shuffle_buffer=0 keeps the (already shuffled) file order: NeurST's
    shuffle is unseeded, so two runs see the same batches only without it."""
    m = MODELS[model]
    layer = {"hidden_size": m["dim"], "num_attention_heads": m["heads"], "filter_size": m["ffn"],
             "num_layers": m["layers"], "attention_dropout_rate": dropout,
             "ffn_dropout_rate": dropout, "layer_postprocess_dropout_rate": dropout,
             "ffn_activation": "relu"}
    params = {"modality.share_source_target_embedding": False,
              "modality.share_embedding_and_softmax_weights": True,
              "modality.dim": m["dim"], "modality.timing": "sinusoids"}
    for side in ("encoder", "decoder"):
        params.update({"%s.%s" % (side, k): v for k, v in layer.items()})
    task = {"batch_size": batch_tokens, "batch_by_tokens": True,
            "max_src_len": corpus["max_len"], "max_trg_len": corpus["max_len"]}
    task.update(corpus["task_params"])
    if shuffle_buffer is not None:
        task["shuffle_buffer"] = shuffle_buffer
    train = {
        "entry.class": "trainer",
        "entry.params": {
            "train_steps": steps, "save_checkpoint_steps": save_steps or steps,
            "summary_steps": summary_steps,
            "criterion.class": "label_smoothed_cross_entropy",
            "criterion.params": {"label_smoothing": 0.1},
            "optimizer.class": "adam",
            "optimizer.params": {"epsilon": 1.e-9, "beta_1": 0.9, "beta_2": 0.98},
            "lr_schedule.class": "noam",
            "lr_schedule.params": {"initial_factor": 1.0, "dmodel": m["dim"],
                                   "warmup_steps": max(steps // 4, 1)}},
        "dataset.class": "ParallelTextDataset",
        "dataset.params": dict(corpus["train_dataset_params"]),
        "task.class": "Seq2Seq", "task.params": task,
        "model.class": "Transformer", "model.params": params,
    }
    predict = {
        "entry.class": "SequenceGenerator",
        "entry.params": {
            "output_file": "hypothesis.txt", "save_metric": "metric.json",
            "metric.class": "BLEU",
            "search_method.class": "beam_search",
            "search_method.params": dict(SEARCH,
                                         maximum_decode_length=corpus["max_len"] + 10)},
        "dataset.class": "ParallelTextDataset",
        "dataset.params": dict(corpus["dev_dataset_params"]),
        "task.params": {"batch_size": 64},
    }
    paths = {}
    for name, cfg in (("train", train), ("predict", predict)):
        paths[name] = os.path.join(os.path.abspath(workdir), name + ".yml")
        with open(paths[name], "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
    return paths


def _env(accelerated):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", LIGHTSEQ_TF_NEURST="1" if accelerated else "0",
               TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _run(cmd, env, log_path, show):
    """Runs a NeurST process, keeps its log, echoes the lines `show` picks.
    It runs in the log's folder: `python -m`/`-c` put the working directory
    first on sys.path, where a source checkout would shadow the installed
    lightseq_tf."""
    lines = []
    with open(log_path, "w") as log, subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=os.path.dirname(os.path.abspath(log_path))) as p:
        for line in p.stdout:
            log.write(line)
            lines.append(line)
            note = show(line)
            if note:
                print(note, flush=True)
    if p.returncode:
        raise RuntimeError("%s failed (exit %d); last lines of %s:\n%s" % (
            " ".join(cmd[:4]), p.returncode, log_path, "".join(lines[-30:])))
    return lines


def _hook_line(line):
    return line.strip() if "lightseq_tf: " in line else None


def make_initial_checkpoint(train_yml, out_dir):
    """NeurST's model for this config, initialised once and saved in NeurST's
    name-based format, so both runs start from the same weights (NeurST has
    no seed flag). Runs natively: the names are the same either way."""
    code = ("import sys, yaml; import neurst;"
            "from neurst.tasks import build_task; from neurst.utils import compat;"
            "from neurst.utils.checkpoints import NameBasedCheckpointManager;"
            "args = yaml.safe_load(open(sys.argv[1])); task = build_task(args);"
            "model = task.build_model(args); inps = task.create_inputs(compat.ModeKeys.TRAIN);"
            "model(task.example_to_input(inps, compat.ModeKeys.TRAIN), is_training=True);"
            "NameBasedCheckpointManager(model, sys.argv[2]).save(0)")
    _run([sys.executable, "-c", code, os.path.abspath(train_yml), os.path.abspath(out_dir)],
         _env(False), os.path.abspath(out_dir) + ".log", lambda line: None)
    return out_dir


RUN_EXP = [sys.executable, "-m", "neurst.cli.run_exp"]


def train(name, accelerated, configs, workdir, init_ckpt, dtype=DTYPE):
    """NeurST's trainer from init_ckpt; returns speed and the loss curve."""
    model_dir = os.path.join(os.path.abspath(workdir), name)
    # NeurST would resume from an earlier demo's checkpoint there, not init_ckpt.
    shutil.rmtree(model_dir, ignore_errors=True)
    updates, losses = [], {}

    def show(line):
        hook = _hook_line(line)
        if hook:
            if "acceleration " in line and not line.split("acceleration ", 1)[1].startswith(
                    "on" if accelerated else "off"):
                raise RuntimeError("the hook did not switch acceleration as asked: " + line)
            return "[%s] %s" % (name, hook)
        m = UPDATE.search(line)
        if m:
            updates.append(float(m.group(3)))
            return "[%s] step %s  loss %s  %.3f s/step" % (name, m.group(1), m.group(2),
                                                           float(m.group(3)))
        m = METRICS.search(line)
        if m:
            losses[int(m.group(1))] = float(m.group(2))
        return None

    t0 = time.time()
    lines = _run(RUN_EXP + ["--config_paths", configs["train"], "--model_dir", model_dir,
                            "--pretrain_model", os.path.abspath(init_ckpt), "--dtype", dtype],
                 _env(accelerated), model_dir + ".train.log", show)
    if not any("NeurST acceleration" in line for line in lines):
        raise RuntimeError("NeurST ran without our hook: install this package with pip (its "
                           ".pth arms the hook) or put lightseq_tf_neurst.pth on the path")
    timed = updates[1:] or updates  # the first report includes graph building
    return {"run": name, "accelerated": accelerated, "model_dir": model_dir, "dtype": dtype,
            "train_seconds": round(time.time() - t0, 1), "load_1min": _load(),
            "steps_per_second": round(len(timed) / sum(timed), 3) if timed else None,
            "final_loss": losses[max(losses)] if losses else None, "losses": losses}


def _load():
    """The 1-minute load average (the machine may be shared)."""
    return round(os.getloadavg()[0], 2)


def decode(model_dir, accelerated, configs, tag, dtype=DTYPE):
    """NeurST's SequenceGenerator (beam search) on the dev set + its BLEU, in
    `dtype`, by our layers (accelerated) or NeurST's own. decode_seconds: the
    whole process (start-up, checkpoint, search, BLEU); generation_seconds:
    NeurST's own timing of the search over the dev set."""
    out = os.path.join(os.path.abspath(model_dir), "decode_" + tag)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    lines = _run(RUN_EXP + ["--config_paths", configs["predict"], "--model_dir", model_dir,
                            "--output_file", os.path.join(out, "hypothesis.txt"),
                            "--save_metric", os.path.join(out, "metric.json"),
                            "--dtype", dtype],
                 _env(accelerated), out + ".log", lambda line: None)
    seconds = round(time.time() - t0, 1)
    with open(os.path.join(out, "metric.json")) as f:
        bleu = float(json.load(f)["sacre_bleu"])  # NeurST's BLEU: detokenised sacreBLEU
    with open(os.path.join(out, "hypothesis.txt")) as f:
        hypotheses = f.read().splitlines()
    generation = [float(m.group(1)) for m in map(GENERATION.search, lines) if m]
    search = generation[-1] if generation else None
    return {"bleu": bleu, "sentences": len(hypotheses), "dtype": dtype,
            "accelerated": accelerated, "decode_seconds": seconds,
            "generation_seconds": search,
            "sentences_per_second": round(len(hypotheses) / search, 1) if search else None,
            "load_1min": _load(), "hypotheses": hypotheses}


def decode_neurst(run, configs, dtype):
    """NeurST's beam search, in the mode the run trained in."""
    return decode(run["model_dir"], run["accelerated"], configs, run["run"], dtype)


def decode_ctranslate2(run, configs, dtype):
    """The run's checkpoint exported to CTranslate2 int8 (lightseq_tf.export),
    the dev set translated on the CPU with the same beam search settings
    (CTranslate2 applies its own length normalisation: README, Export)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # NeurST's Keras, as in its processes
    from lightseq_tf.export import ctranslate2 as ct2_export
    with open(configs["predict"]) as f:
        predict = yaml.safe_load(f)
    data, search = predict["dataset.params"], predict["entry.params"]["search_method.params"]
    t0 = time.time()
    out = ct2_export.translate_neurst(
        run["model_dir"], data["src_file"], os.path.join(run["model_dir"], "ct2_int8"),
        quantization="int8", beam_size=search["beam_size"],
        length_penalty=search["length_penalty"],
        max_decoding_length=search["maximum_decode_length"], reference_file=data["trg_file"])
    return {"bleu": out["bleu"], "sentences": out["sentences"], "dtype": "int8",
            "decode_seconds": round(time.time() - t0, 1),
            "generation_seconds": round(out["seconds"], 2),
            "sentences_per_second": round(out["sentences_per_second"], 1),
            "load_1min": _load(), "hypotheses": out["hypotheses"]}


# name -> function(run (train()'s dict), configs (neurst_configs'), dtype) ->
# {"bleu", "sentences", "decode_seconds", "generation_seconds" (the search
# alone), "sentences_per_second" (over it), "hypotheses", ...}
DECODERS = {"neurst": decode_neurst, "ctranslate2_int8": decode_ctranslate2}


def _row(*cells):
    """A markdown table row; floats to 3 decimals, None (not reported) as -."""
    return "| %s |" % " | ".join("-" if c is None else "%.3f" % c if isinstance(c, float)
                                 else str(c) for c in cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="lightseq_tf_neurst_demo")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    parser.add_argument("--runs", default="accelerated,native",
                        help="comma-separated subset of accelerated,native")
    parser.add_argument("--decoders", default=",".join(DECODERS),
                        help="comma-separated subset of " + ",".join(DECODERS))
    parser.add_argument("--dtype", choices=("float32", "float16"), default=DTYPE,
                        help="NeurST's computation dtype for training and decoding")
    parser.add_argument("--generated-corpus", action="store_true",
                        help="use the generated corpus even where gettext catalogs exist")
    args = parser.parse_args(argv)
    decoders = args.decoders.split(",")
    unknown = sorted(set(decoders) - set(DECODERS))
    if unknown:
        parser.error("unknown decoder(s) %s (known: %s)" % (", ".join(unknown),
                                                           ", ".join(DECODERS)))
    args.workdir = os.path.abspath(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    t0 = time.time()
    corpus = demo_corpus.neurst_corpus(os.path.join(args.workdir, "data"),
                                       generated=args.generated_corpus)
    corpus_seconds = round(time.time() - t0, 1)
    print("corpus: %s (%d train / %d dev pairs, %.0f s)" % (
        corpus["source"], corpus["train_pairs"], corpus["dev_pairs"], corpus_seconds), flush=True)
    configs = neurst_configs(args.workdir, corpus, args.model, args.steps)
    init = make_initial_checkpoint(configs["train"], os.path.join(args.workdir, "init"))
    results = []
    for name in args.runs.split(","):
        run = train(name, name == "accelerated", configs, args.workdir, init, args.dtype)
        run["decodes"] = {}
        for decoder in decoders:
            dec = DECODERS[decoder](run, configs, args.dtype)
            print("[%s] %s: BLEU %.2f (beam %d, %d dev sentences, %.0f s)" % (
                name, decoder, dec["bleu"], SEARCH["beam_size"], dec["sentences"],
                dec["decode_seconds"]), flush=True)
            run["decodes"][decoder] = {k: v for k, v in dec.items() if k != "hypotheses"}
        results.append(run)
    summary = {"corpus": {k: v for k, v in corpus.items() if k.endswith(("pairs", "source"))},
               "corpus_seconds": corpus_seconds,
               "model": dict(MODELS[args.model], name=args.model), "steps": args.steps,
               "dtype": args.dtype, "search": SEARCH, "cpus": os.cpu_count(),
               "demo_seconds": round(time.time() - t0, 1), "runs": results}
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("\n| run | steps/s | train s | final loss |\n|---|---|---|---|")
    for r in results:
        print(_row(r["run"], r["steps_per_second"], r["train_seconds"], r["final_loss"]))
    print("\n| run | decoder | BLEU (beam %d) | decode s | of it, the search s | "
          "sentences/s (search) |\n|---|---|---|---|---|---|" % SEARCH["beam_size"])
    for r in results:
        for decoder, d in r["decodes"].items():
            print(_row(r["run"], decoder, d["bleu"], d["decode_seconds"],
                       d["generation_seconds"], d["sentences_per_second"]))
    if len(results) == 2 and results[1]["steps_per_second"]:
        print("speed ratio accelerated/native: %.2fx"
              % (results[0]["steps_per_second"] / results[1]["steps_per_second"]))
    print("demo: %.0f s" % summary["demo_seconds"])
    return summary


if __name__ == "__main__":
    main()
