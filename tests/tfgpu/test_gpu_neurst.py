"""NeurST on the device under test, through its own CLI and its own tests.

End to end (tests/neurst/test_neurst_e2e.py's runs and checks, on the GPU):
NeurST's trainer, accelerated (our layers, fused CE, LSAdam) and native, from
one initial checkpoint, dropout and shuffling off; the loss curves must
track as closely as native NeurST tracks itself under another valid
rounding, and each checkpoint decodes the same both ways. float32 with TF32
off (NVIDIA_TF32_OVERRIDE=0) on both, so the first step agrees to float32
rounding; native's rounding variant on a GPU is native NeurST on the CPU
(on the CPU: oneDNN off, as in tests/neurst).

NeurST's own layer / beam-search / model tests with golden values
(build_tools/neurst_own_tests.sh), natively and with our layers, on the GPU
(TF32 off: the golden values are float32's)."""
import os
import subprocess
import sys

import pytest

import target  # noqa: F401  (first: skips this module where TensorFlow lists no GPU)
from build_tools.tf_gpu import neurst_demo
from target import ON_GPU

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "neurst"))
neurst_demo.demo()  # puts examples/neurst on sys.path, as tests/neurst's conftest does
import neurst_env  # noqa: E402
import test_neurst_e2e as e2e  # noqa: E402

pytestmark = [pytest.mark.neurst, pytest.mark.slow]
FP32 = {"NVIDIA_TF32_OVERRIDE": "0"}
# Native NeurST under other, equally valid float32 rounding.
NATIVE_VARIANT = {"CUDA_VISIBLE_DEVICES": ""} if ON_GPU else {"TF_ENABLE_ONEDNN_OPTS": "0"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    demo = neurst_demo.demo()
    work = str(tmp_path_factory.mktemp("neurst_e2e_gpu"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", neurst_env.subprocess_env(work)["PYTHONPATH"])
        for k, v in FP32.items():
            env.setenv(k, v)
        corpus = neurst_demo.corpus(os.path.join(work, "data"), generated=True)
        configs = demo.neurst_configs(work, corpus, "tiny", e2e.STEPS, dropout=0.0,
                                      summary_steps=20, shuffle_buffer=0)
        init = demo.make_initial_checkpoint(configs["train"], os.path.join(work, "init"))
        trained = {name: demo.train(name, name == "accelerated", configs, work, init)
                   for name in ("accelerated", "native")}
        with pytest.MonkeyPatch.context() as variant:
            for k, v in NATIVE_VARIANT.items():
                variant.setenv(k, v)
            trained["native_rounded"] = demo.train("native_rounded", False, configs, work, init)
        yield configs, trained


def test_losses_track(runs):
    e2e.test_losses_track(runs)


def test_checkpoints_decode_the_same_both_ways(runs):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NVIDIA_TF32_OVERRIDE", "0")
        e2e.test_checkpoints_decode_the_same_both_ways(runs)


def test_neurst_own_tests_pass_natively_and_with_our_layers(tmp_path):
    """NeurST's 15 tests (its sdist; carried to the GPU machine, downloaded
    elsewhere), twice. The hook's log lines show what ran accelerated."""
    work = tmp_path / "own"
    sdist = os.path.join(os.environ.get("TFGPU_ROOT", "/nonexistent"), "sdist",
                         "neurst-0.1.2.tar.gz")
    if os.path.exists(sdist):
        (work / "sdist").mkdir(parents=True)
        (work / "sdist" / "neurst-0.1.2.tar.gz").write_bytes(open(sdist, "rb").read())
    # the script runs `python`: this interpreter (a wrapper, not a link: a
    # virtual environment is found from the path the interpreter is run by)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").write_text('#!/bin/sh\nexec "%s" "$@"\n' % sys.executable)
    (bindir / "python").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ.get("PATH", "")), **FP32)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    r = subprocess.run([os.path.join(ROOT, "build_tools", "neurst_own_tests.sh"), str(work)],
                       env=env, capture_output=True, text=True, timeout=1200)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    summaries = [line for line in r.stdout.splitlines() if " passed" in line]
    assert len(summaries) == 2 and all("failed" not in s for s in summaries), summaries
    assert "accelerated" in r.stdout  # the hook's per-stack line of the accelerated run
