"""The NeurST demo's driver and corpus for tests/tfgpu and benchmarks/tf_gpu_*:
the one place that knows where the demo lives (it is moving from
lightseq_tf/integrations/neurst/ to examples/neurst/) and how its corpus is
made on the GPU test machine.

The corpus there is built from the German gettext catalogs carried by
build_tools/tf_gpu_env.sh stage ($TFGPU_ROOT/locale): the same real text as
the demo on the CPU machines, where the GPU machine's own image may have no
catalogs (the demo would fall back to its generated corpus).
"""
import importlib
import json
import os


def _first(*names):
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("the NeurST demo is in none of %s" % (names,))


def demo():
    """The demo driver module: neurst_configs, make_initial_checkpoint, train,
    decode, RUN_EXP, UPDATE, MODELS."""
    module = _first("examples.neurst.demo", "lightseq_tf.integrations.neurst.demo")
    # The benchmarks' models, in the demo's own format (NeurST's
    # transformer_base / transformer_big, 6 + 6 layers).
    module.MODELS.setdefault("base", dict(dim=512, layers=6, heads=8, ffn=2048))
    module.MODELS.setdefault("big", dict(dim=1024, layers=6, heads=16, ffn=4096))
    return module


def corpus_module():
    return _first("examples.neurst.demo_corpus", "lightseq_tf.integrations.neurst.demo_corpus")


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
