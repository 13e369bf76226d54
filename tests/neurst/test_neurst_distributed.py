"""NeurST's own distributed switch, accelerated: `--distribution_strategy
multi_worker_mirrored` with two worker processes on 127.0.0.1 (NeurST's
WORKER_HOSTS / TASK_ID; what two hosts, or two GPUs of one host, run),
NeurST's CLI otherwise unchanged. Each worker trains with our layers, fused
cross-entropy and LSAdam (fused per replica under the strategy) on its own
shard of the batches; the all-reduce must leave both with the same weights,
and they must have learned. (NeurST's `mirrored` default splits over the
visible GPUs, of which CI has none; the same LSAdam path serves both
strategies and tests/cpu/test_distributed.py runs MirroredStrategy over two
logical CPUs.)"""
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import demo  # examples/neurst (conftest puts it on sys.path)
import demo_corpus
from neurst_env import subprocess_env
from ports import free_ports


STEPS = 30
# Appended to the workers' sitecustomize: reports (once, when NeurST's
# train step is traced) that LSAdam took its fused path and under what.
FUSED_ADAM_PROBE = """
import sys
import lightseq_tf.optimizers as _opt
_fused = _opt._fused_adam_per_replica
def _probe(distribution, *args):
    sys.stderr.write("probe: fused LSAdam under %s with %d replicas\\n" % (
        type(distribution).__name__, distribution.num_replicas_in_sync))
    return _fused(distribution, *args)
_opt._fused_adam_per_replica = _probe
"""


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("neurst_mwms"))
    env = dict(subprocess_env(work), **demo._env(True))
    with open(os.path.join(work, "site", "sitecustomize.py"), "a") as f:
        f.write(FUSED_ADAM_PROBE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", env["PYTHONPATH"])
        corpus = demo_corpus.neurst_corpus(os.path.join(work, "data"), generated=True)
        configs = demo.neurst_configs(work, corpus, "tiny", STEPS, dropout=0.0,
                                      summary_steps=10, shuffle_buffer=0)
        init = demo.make_initial_checkpoint(configs["train"], os.path.join(work, "init"))
    hosts = ",".join("127.0.0.1:%d" % p for p in free_ports(2))
    procs = []
    for task in range(2):
        model_dir = os.path.join(work, "worker%d" % task)
        log = open(model_dir + ".log", "w")
        procs.append((model_dir, log, subprocess.Popen(
            demo.RUN_EXP + ["--config_paths", configs["train"], "--model_dir", model_dir,
                            "--pretrain_model", init, "--dtype", "float32",
                            "--distribution_strategy", "multi_worker_mirrored"],
            env=dict(env, WORKER_HOSTS=hosts, TASK_ID=str(task)), stdout=log,
            stderr=subprocess.STDOUT, cwd=work)))
    try:
        codes = [p.wait(timeout=900) for _, _, p in procs]
    finally:
        for _, log, p in procs:
            if p.poll() is None:
                p.kill()
            log.close()
    logs = [open(d + ".log").read() for d, _, _ in procs]
    assert codes == [0, 0], "\n\n".join(text[-3000:] for text in logs)
    return [d for d, _, _ in procs], logs


def test_both_workers_ran_accelerated_in_sync(workers):
    _, logs = workers
    for text in logs:
        assert "NeurST acceleration on" in text
        assert "num_replicas_in_sync=2" in text
        assert "ckpt-%d" % STEPS in text  # both saved after the last step
        assert "probe: fused LSAdam under CollectiveAllReduceStrategy with 2 " \
            "replicas" in text
    assert "Update %d\t" % STEPS in logs[0]  # NeurST reports metrics from worker 0


def test_workers_hold_the_same_weights_and_learned(workers):
    dirs, logs = workers
    readers = [tf.train.load_checkpoint(d) for d in dirs]
    names = sorted(n for n in readers[0].get_variable_to_shape_map() if "_CHECKPOINTABLE" not in n)
    assert len(names) > 20 and names == sorted(
        n for n in readers[1].get_variable_to_shape_map() if "_CHECKPOINTABLE" not in n)
    for n in names:
        np.testing.assert_array_equal(readers[0].get_tensor(n), readers[1].get_tensor(n), n)
    losses = [float(line.split("TrainingLoss=")[1].split()[0]) for line in logs[0].splitlines()
              if "TrainingLoss=" in line]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
