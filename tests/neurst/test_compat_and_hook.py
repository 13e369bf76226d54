"""The modern-TF mappings (each one, and that they stay inside NeurST) and
the import hook's switches (LIGHTSEQ_TF_NEURST=0/1/unset, no NeurST)."""
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
from neurst_env import subprocess_env

from lightseq_tf.integrations.neurst import compat, hook


@pytest.fixture(scope="module")
def imports():
    return compat.NeurSTImports()


def test_all_five_mappings_are_active_on_this_tf(imports):
    assert len(imports.mappings) == 5, imports.mappings


def test_distribution_strategy_context(imports):
    from tensorflow.python.distribute import distribute_lib
    pkg = imports("tensorflow.python.distribute", fromlist=["distribution_strategy_context"])
    ctx = pkg.distribution_strategy_context
    assert ctx.get_strategy is distribute_lib.get_strategy
    assert not ctx.has_strategy() and ctx.get_replica_context() is not None
    assert pkg.reduce_util is not None  # the rest of the package reads through


def test_keras_internals_are_tf_keras(imports):
    from tf_keras.src.engine import data_adapter
    from tf_keras.src.mixed_precision import loss_scale_optimizer
    assert imports("tensorflow.python.keras.engine", fromlist=["data_adapter"]) \
        .data_adapter is data_adapter
    assert imports("tensorflow.python.keras.mixed_precision.loss_scale_optimizer",
                   fromlist=["_DynamicLossScaleState"]) is loss_scale_optimizer


def test_optimizers_are_legacy_inside_neurst_only(imports):
    ntf = imports("tensorflow")
    for name in ("Optimizer", "Adam", "Adagrad", "Adadelta", "SGD"):
        assert getattr(ntf.keras.optimizers, name) is getattr(tf.keras.optimizers.legacy, name)
    assert hasattr(ntf.keras.optimizers.Adam(), "_set_hyper")
    assert ntf.keras.layers.Dense is tf.keras.layers.Dense and ntf.constant is tf.constant
    assert tf.keras.optimizers.Adam is not tf.keras.optimizers.legacy.Adam  # outside: unchanged


def test_summary_graph_drops_step(imports, tmp_path):
    ops = imports("tensorflow.python.ops", fromlist=["summary_ops_v2"])
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        ops.summary_ops_v2.graph(tf.Graph(), step=0)  # NeurST's call (callbacks.py)
    from tensorflow.python.ops import summary_ops_v2
    assert ops.summary_ops_v2.graph is not summary_ops_v2.graph


def test_control_flow_cond(imports):
    cfo = imports("tensorflow.python.ops", fromlist=["control_flow_ops"]).control_flow_ops
    assert int(cfo.cond(tf.constant(True), lambda: 1, lambda: 2)) == 1
    assert cfo.group is not None
    from tensorflow.python.ops import control_flow_ops
    assert not hasattr(control_flow_ops, "cond")


def test_neurst_modules_run_with_the_mappings():
    import neurst.training.revised_dynamic_loss_scale as rdls
    assert rdls.__builtins__["__import__"].__self__.__class__ is compat.NeurSTImports
    assert rdls.distribution_strategy_context.get_strategy is tf.distribute.get_strategy


def test_decision():
    assert hook.acceleration_decision("1") == (True, "LIGHTSEQ_TF_NEURST=1")
    assert hook.acceleration_decision("0") == (False, "LIGHTSEQ_TF_NEURST=0")
    on, why = hook.acceleration_decision("")  # no GPU here
    assert not on and "LIGHTSEQ_TF_NEURST=1" in why
    with pytest.raises(ValueError, match="LIGHTSEQ_TF_NEURST"):
        hook.acceleration_decision("yes")


def test_native_components():
    from lightseq_tf.integrations.neurst import swaps
    assert set(swaps.patches()) == set(swaps.PATCHES)
    kept = swaps.patches(["optimizer", "embedding"])
    assert "neurst.optimizers" not in kept and "neurst.layers.common_layers" not in kept
    assert "neurst.layers.encoders.transformer_encoder" in kept
    with pytest.raises(ValueError, match="unknown component.*bogus.*known: layers"):
        swaps.patches(["bogus"])


def _python(tmp_path, code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          env=subprocess_env(tmp_path, **env), text=True,
                          capture_output=True, timeout=300)


def test_off_leaves_neurst_native(tmp_path):
    r = _python(tmp_path, """
        import neurst.layers.encoders.transformer_encoder as te
        import neurst.criterions.label_smoothed_cross_entropy as ce
        assert te.TransformerEncoder.build.__module__ == te.__name__
        assert ce.LabelSmoothedCrossEntropy.__call__.__module__ == ce.__name__
        import tensorflow as tf
        assert tf.keras.__name__.startswith("tf_keras")  # selected by the hook
        print("native ok")
        """, LIGHTSEQ_TF_NEURST="0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "native ok" in r.stdout and "acceleration off (LIGHTSEQ_TF_NEURST=0)" in r.stderr


def test_on_swaps_and_logs(tmp_path):
    r = _python(tmp_path, """
        import neurst.layers.encoders.transformer_encoder as te
        assert te.TransformerEncoder.build.__module__ == "lightseq_tf.integrations.neurst.swaps"
        print("swapped ok")
        """, LIGHTSEQ_TF_NEURST="1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "swapped ok" in r.stdout and "acceleration on (LIGHTSEQ_TF_NEURST=1)" in r.stderr


def test_without_neurst_our_package_imports(tmp_path):
    r = _python(tmp_path, """
        import sys
        sys.modules["neurst"] = None  # as if NeurST were not installed
        import lightseq_tf, lightseq_tf.integrations.neurst
        try:
            import neurst
        except ImportError:
            print("no neurst, ok")
        """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no neurst, ok" in r.stdout
