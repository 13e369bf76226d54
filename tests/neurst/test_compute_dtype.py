"""NeurST's computation dtype where the user sets none: float32 without a
GPU, NeurST's float16 with one, and every explicit choice (--dtype, `dtype:`
in a config file, LIGHTSEQ_TF_NEURST_DTYPE) kept. The end-to-end cases run
NeurST's own flag parsing and startup_env as its run_exp CLI calls them, in
a fresh process each (NeurST defines its flags once per process)."""
import subprocess
import sys
import textwrap

import pytest
from neurst_env import subprocess_env

from lightseq_tf.integrations.neurst import compute_dtype

ENV = compute_dtype.ENV


def test_decision():
    assert compute_dtype.default_dtype("", gpu_visible=False)[0] == "float32"
    assert compute_dtype.default_dtype("", gpu_visible=True) == (
        "float16", "NeurST's default: a GPU is visible")
    assert compute_dtype.default_dtype("float16", gpu_visible=False) == (
        "float16", ENV + "=float16")
    assert compute_dtype.default_dtype("float32", gpu_visible=True) == (
        "float32", ENV + "=float32")
    with pytest.raises(ValueError, match=ENV + r" must be float16 or float32.*'bfloat16'"):
        compute_dtype.default_dtype("bfloat16", gpu_visible=False)
    assert compute_dtype.default_dtype("")[0] == "float32"  # no GPU here


def test_patches_join_the_hooks():
    """Installed with acceleration on or off; a module both patch gets both."""
    calls = []
    merged = compute_dtype.add_patches({"neurst.training.training_utils": calls.append,
                                        "neurst.optimizers": calls.append})
    assert set(merged) == {"neurst.training.training_utils", "neurst.optimizers",
                           "neurst.utils.flags_core"}

    class Module:
        @staticmethod
        def startup_env(dtype="float16"):
            return dtype

    merged["neurst.training.training_utils"](Module)
    assert calls == [Module] and Module.startup_env.__module__ == compute_dtype.__name__


# run_exp's _main up to the point where NeurST sets its dtype (startup_env),
# with a fake GPU when FAKE_GPU is set: the decision's only input.
PARSE = """
import os, sys
import tensorflow as tf
if os.environ.get("FAKE_GPU"):
    listed = tf.config.list_physical_devices
    tf.config.list_physical_devices = lambda kind=None: (
        [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")] if kind == "GPU"
        else listed(kind))
from absl import logging
logging.set_verbosity(logging.INFO)
import neurst.cli.run_exp as run_exp
from neurst.training import training_utils
from neurst.utils import flags_core
sys.argv = ["run_exp"] + sys.argv[1:]
parser = flags_core.define_flags(run_exp.FLAG_LIST)
args, _ = flags_core.intelligent_parse_flags(run_exp.FLAG_LIST, parser, run_exp._pre_load_args)
training_utils.startup_env(dtype=args["dtype"])
print("RESULT", args["dtype"], tf.keras.mixed_precision.global_policy().name)
"""


def run_exp_dtype(tmp_path, argv=(), config="", **env):
    cfg = tmp_path / "config.yml"
    cfg.write_text("entry.class: trainer\n" + config)
    env = subprocess_env(tmp_path, **env)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(PARSE), "--config_paths", str(cfg),
                        *argv], env=env, text=True, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = [line.split()[1:] for line in r.stdout.splitlines() if line.startswith("RESULT")]
    ours = [line for line in r.stderr.splitlines() if "lightseq_tf: NeurST computes in" in line]
    return tuple(result[0]), ours


@pytest.mark.parametrize("accelerated", ["0", "1"])
def test_unset_on_a_cpu_computes_in_float32(tmp_path, accelerated):
    got, lines = run_exp_dtype(tmp_path, LIGHTSEQ_TF_NEURST=accelerated)
    assert got == ("None", "float32")
    assert len(lines) == 1 and lines[0].startswith("W") and "no GPU is visible" in lines[0], lines


def test_unset_with_a_gpu_keeps_neursts_float16(tmp_path):
    got, lines = run_exp_dtype(tmp_path, FAKE_GPU="1", LIGHTSEQ_TF_NEURST="0")
    assert got == ("None", "mixed_float16")
    assert len(lines) == 1 and "float16 (NeurST's default: a GPU is visible)" in lines[0]


@pytest.mark.parametrize("how", ["flag", "config"])
def test_explicit_dtype_wins(tmp_path, how):
    got, lines = run_exp_dtype(tmp_path, argv=["--dtype", "float16"] if how == "flag" else [],
                               config="dtype: float16\n" if how == "config" else "")
    assert got == ("float16", "mixed_float16") and lines == []


def test_environment_variable_wins(tmp_path):
    got, lines = run_exp_dtype(tmp_path, **{ENV: "float16"})
    assert got == ("None", "mixed_float16")
    assert len(lines) == 1 and "float16 (%s=float16)" % ENV in lines[0], lines
