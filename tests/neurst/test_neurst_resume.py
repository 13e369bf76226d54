"""Exact resumption of NeurST training with our package (resume.py): a
run killed with SIGKILL between checkpoints and restarted continues from the
last checkpoint and ends with the weights and optimizer state of an
uninterrupted run, bit for bit (shuffle and dropout off: deterministic
batches), losing only the steps after that checkpoint. NeurST's CLI as is."""
import os
import signal
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import demo  # examples/neurst (conftest puts it on sys.path)
import demo_corpus
from neurst_env import subprocess_env


STEPS, SAVE = 40, 10


def train(configs, model_dir, init, env, steps=None, kill_after=None):
    """NeurST's trainer; with kill_after, SIGKILL once it reports that step."""
    cmd = demo.RUN_EXP + ["--config_paths", configs["train"], "--model_dir", model_dir,
                          "--pretrain_model", init, "--dtype", "float32"]
    if steps is not None:
        cmd += ["--train_steps", str(steps)]
    lines = []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, cwd=os.path.dirname(model_dir)) as p:
        for line in p.stdout:
            lines.append(line)
            if kill_after is not None and "Update %d\t" % kill_after in line:
                p.send_signal(signal.SIGKILL)
                break
        p.wait(timeout=600)
    if kill_after is None:
        assert p.returncode == 0, "".join(lines[-40:])
    else:
        assert p.returncode == -signal.SIGKILL, "".join(lines[-40:])
    return "".join(lines)


def variables(path):
    """NeurST's checkpoint: every variable; ours: the optimizer's (its
    iterations and the slots), not the Keras metrics' running sums, which
    restart with every fit()."""
    r = tf.train.load_checkpoint(path)
    names = [n for n in r.get_variable_to_shape_map() if "_CHECKPOINTABLE" not in n]
    if os.path.basename(path).startswith("optimizer"):
        names = [n for n in names if n.startswith("optimizer/") or "OPTIMIZER_SLOT" in n]
    return {n: r.get_tensor(n) for n in names}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("neurst_resume"))
    env = dict(subprocess_env(work), **demo._env(True))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", env["PYTHONPATH"])
        corpus = demo_corpus.neurst_corpus(os.path.join(work, "data"), generated=True)
        configs = demo.neurst_configs(work, corpus, "tiny", STEPS, dropout=0.0, summary_steps=5,
                                      shuffle_buffer=0, save_steps=SAVE)
        init = demo.make_initial_checkpoint(configs["train"], os.path.join(work, "init"))
    whole, cut = os.path.join(work, "whole"), os.path.join(work, "cut")
    logs = {"whole": train(configs, whole, init, env),
            "killed": train(configs, cut, init, env, kill_after=25)}
    killed_files = sorted(os.listdir(cut))
    # NeurST trains --train_steps more after a restart: the remaining 20.
    logs["resumed"] = train(configs, cut, init, env, steps=STEPS - 20)
    for name, text in logs.items():
        with open(os.path.join(work, name + ".log"), "w") as f:
            f.write(text)
    return whole, cut, logs, killed_files


def test_the_kill_fell_between_checkpoints(runs):
    _, _, logs, killed_files = runs
    assert "ckpt-20.index" in killed_files and "optimizer-20.index" in killed_files
    assert "ckpt-30.index" not in killed_files
    assert "optimizer state of step 20 restored" in logs["resumed"]
    assert "resuming at step 20" in logs["resumed"]
    assert "Update 25\t" in logs["resumed"] and "Update 40\t" in logs["resumed"]


def test_resumed_run_equals_the_uninterrupted_one(runs):
    whole, cut, _, _ = runs
    for step in (30, 40):
        for prefix in ("ckpt", "optimizer"):
            a = variables(os.path.join(whole, "%s-%d" % (prefix, step)))
            b = variables(os.path.join(cut, "%s-%d" % (prefix, step)))
            assert sorted(a) == sorted(b) and len(a) > 10, (prefix, step)
            for name in a:
                np.testing.assert_array_equal(a[name], b[name], "%s-%d %s" % (prefix, step,
                                                                             name))
    # The optimizer state is LSAdam's: iterations and both moments of every variable.
    opt = variables(os.path.join(cut, "optimizer-40"))
    assert any("iter" in n for n in opt)
    assert sum("OPTIMIZER_SLOT" in n for n in opt) >= 2 * len(variables(os.path.join(cut,
                                                                                     "ckpt-40")))
