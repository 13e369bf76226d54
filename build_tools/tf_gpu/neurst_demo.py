"""The NeurST demo's driver and corpus for tests/tfgpu and benchmarks/tf_gpu_*:
the one place that knows where the demo lives (examples/neurst/) and how its
corpus is made on the GPU test machine.

The corpus there is built from the German gettext catalogs carried by
build_tools/tf_gpu_env.sh stage ($TFGPU_ROOT/locale): the same real text as
the demo on the CPU machines, where the GPU machine's own image may have no
catalogs (the demo would fall back to its generated corpus).
"""
import importlib
import json
import os
import sys

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "examples", "neurst")


def _import(name):
    """A module of the demo's folder (examples/neurst: not a package; its
    modules import each other by their plain names)."""
    if EXAMPLE not in sys.path:
        sys.path.insert(0, EXAMPLE)
    return importlib.import_module(name)


def demo():
    """The demo driver module: neurst_configs, make_initial_checkpoint, train,
    decode, _run, MODELS."""
    module = _import("demo")
    # The benchmarks' models, in the demo's own format (NeurST's
    # transformer_base / transformer_big, 6 + 6 layers).
    module.MODELS.setdefault("base", dict(dim=512, layers=6, heads=8, ffn=2048))
    module.MODELS.setdefault("big", dict(dim=1024, layers=6, heads=16, ffn=4096))
    return module


def corpus_module():
    return _import("demo_corpus")


def corpus(out_dir, generated=False):
    """The demo corpus in out_dir (built once, then read back): from the
    carried catalogs where there are some, else as the demo makes it."""
    info_path = os.path.join(out_dir, "corpus.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            return json.load(f)
    dc = corpus_module()
    carried = os.path.join(os.environ.get("TFGPU_ROOT", "/nonexistent"), "locale")
    if not generated and os.path.isdir(os.path.join(carried, "de", "LC_MESSAGES")):
        info = dc.build_corpus(out_dir, locale_root=carried)
    else:
        info = dc.neurst_corpus(out_dir, generated=generated)
    with open(info_path, "w") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
    return info
