"""What NeurST 0.1.2 (written for TF 2.3-2.5) imports that current TensorFlow
moved or removed, mapped for NeurST's own modules only.

Every module under `neurst.` is executed with private builtins whose
`__import__` applies the table below; nothing else in the process sees a
change (TensorFlow itself still imports its own `tensorflow.python.keras`
remnants). A mapping is active only where the running TensorFlow lacks what
NeurST calls (`needed()`), so on an old TF this module maps nothing.

| # | NeurST calls | it gets | why |
|---|---|---|---|
| 1 | `tensorflow.python.distribute.distribution_strategy_context` | the same-named functions of `distribute_lib` | module removed in TF 2.15 |
| 2 | `tensorflow.python.keras.*` | `tf_keras.src.*` | TF's stale Keras copy; NeurST subclasses Keras-2 internals that must be tf_keras' |
| 3 | `tf.keras.optimizers.{Optimizer, Adam, Adagrad, Adadelta, SGD}` | their `legacy` classes | NeurST calls `_set_hyper`, which only the legacy optimizers have |
| 4 | `summary_ops_v2.graph(graph, step=...)` | `graph(graph)` | `step` argument removed |
| 5 | `control_flow_ops.cond` | `tf.cond` | removed from control_flow_ops |
"""
import builtins
import functools
import importlib
import inspect
import types

import tensorflow as tf

KERAS_PREFIX = "tensorflow.python.keras"


class Overlay(types.ModuleType):
    """A module seen with some attributes replaced (the rest read through)."""

    def __init__(self, base, overrides):
        super().__init__(base.__name__, base.__doc__)
        self.__dict__["_overlay_base"] = base
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self.__dict__["_overlay_base"], name)


def _has_module(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def _tf_keras_active():
    return tf.keras.__name__.split(".")[0] == "tf_keras"


# --- the five mappings: each a (needed, apply) pair over what NeurST imports ---

def _strategy_context():
    from tensorflow.python.distribute import distribute_lib
    names = ("get_strategy", "has_strategy", "in_cross_replica_context", "get_replica_context",
             "get_cross_replica_context")
    module = types.ModuleType("tensorflow.python.distribute.distribution_strategy_context",
                              "lightseq_tf: distribute_lib's functions under their TF < 2.15 home")
    module.__dict__.update({n: getattr(distribute_lib, n) for n in names})
    return module


def _legacy_optimizers():
    opt = tf.keras.optimizers
    return Overlay(opt, {n: getattr(opt.legacy, n) for n in LEGACY_OPTIMIZERS})


def _summary_graph_without_step():
    from tensorflow.python.ops import summary_ops_v2
    graph = summary_ops_v2.graph

    @functools.wraps(graph)
    def graph_without_step(graph_data, step=None):  # pylint: disable=unused-argument
        return graph(graph_data)

    return Overlay(summary_ops_v2, {"graph": graph_without_step})


def _control_flow_with_cond():
    from tensorflow.python.ops import control_flow_ops
    return Overlay(control_flow_ops, {"cond": tf.cond})


def _needs_step_drop():
    from tensorflow.python.ops import summary_ops_v2
    return "step" not in inspect.signature(summary_ops_v2.graph).parameters


def _needs_cond():
    from tensorflow.python.ops import control_flow_ops
    return not hasattr(control_flow_ops, "cond")


LEGACY_OPTIMIZERS = ("Optimizer", "Adam", "Adagrad", "Adadelta", "SGD")


def _needs_legacy_optimizers():
    legacy = getattr(tf.keras.optimizers, "legacy", None)
    return not hasattr(tf.keras.optimizers.Adam, "_set_hyper") and all(
        hasattr(legacy, n) for n in LEGACY_OPTIMIZERS)


# Attribute overrides by the module NeurST imports from (`from M import a` and
# `import M` read attributes of M): {module: {attribute: (needed, make)}}.
_ATTRIBUTE_MAPS = {
    "tensorflow.python.distribute": {
        "distribution_strategy_context": (
            lambda: not _has_module("tensorflow.python.distribute.distribution_strategy_context"),
            _strategy_context)},
    "tensorflow.python.ops": {
        "summary_ops_v2": (_needs_step_drop, _summary_graph_without_step),
        "control_flow_ops": (_needs_cond, _control_flow_with_cond)},
}


class NeurSTImports:
    """The `__import__` NeurST's modules run with: the table above, decided
    once per process (`mappings` lists what is active, for the log line;
    `problem` says why NeurST cannot work here, if it cannot)."""

    def __init__(self):
        self.problem = None if _tf_keras_active() else (
            "NeurST is Keras-2 code but TensorFlow was imported with Keras 3: install tf_keras "
            "and set TF_USE_LEGACY_KERAS=1 before anything imports TensorFlow (or import neurst "
            "first)")
        self.rename_keras = _tf_keras_active() and _has_module("tf_keras.src")
        self.mappings = ["tensorflow.python.keras -> tf_keras.src"] if self.rename_keras else []
        self._overlays = {}
        for module, attrs in _ATTRIBUTE_MAPS.items():
            active = {a: make for a, (needed, make) in attrs.items() if needed()}
            if active:
                self._overlays[module] = Overlay(importlib.import_module(module),
                                                 {a: make() for a, make in active.items()})
                self.mappings += ["%s.%s" % (module, a) for a in active]
        if _needs_legacy_optimizers():
            keras = tf.keras
            self._overlays["tensorflow"] = Overlay(tf, {"keras": Overlay(
                keras, {"optimizers": _legacy_optimizers()})})
            self.mappings.append("tf.keras.optimizers -> tf.keras.optimizers.legacy")
        self.builtins = dict(builtins.__dict__, __import__=self.__call__)

    def _rename(self, name):
        if self.rename_keras and (name == KERAS_PREFIX or name.startswith(KERAS_PREFIX + ".")):
            return "tf_keras.src" + name[len(KERAS_PREFIX):]
        return name

    def __call__(self, name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level:  # relative imports stay inside NeurST
            return builtins.__import__(name, globals, locals, fromlist, level)
        module = builtins.__import__(self._rename(name), globals, locals, fromlist, level)
        # `from M import a` binds attributes of M; `import M.x` binds the top package.
        return self._overlays.get(module.__name__ if fromlist else module.__name__.split(".")[0],
                                  module)
