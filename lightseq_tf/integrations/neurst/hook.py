"""Runs NeurST's modules with the compat imports and applies our swaps as
NeurST's modules load (no NeurST source is edited or copied).

`install()` puts a finder in front of sys.meta_path. For every `neurst.*`
module it wraps the normal loader: the module runs with
`compat.NeurSTImports` as its `__import__`, and where `swaps.patches()`
(acceleration on) or `compute_dtype` (always) names the module, the patch
runs right after the module body, before any other NeurST module can bind
the patched names.
"""
import importlib.abc
import os
import sys

from lightseq_tf.integrations.neurst import compat, compute_dtype

ENV = "LIGHTSEQ_TF_NEURST"

_state = {}


def _gpu_available():
    """(a GPU is visible and we can use it, the op library has CUDA)."""
    import tensorflow as tf
    try:
        from lightseq_tf import _build_info
        cuda = bool(getattr(_build_info, "CUDA_VERSION", None))
    except ImportError:  # a source tree built in place without build info
        cuda = False
    return cuda and bool(tf.config.list_physical_devices("GPU")), cuda


def acceleration_decision(env=None):
    """(on, reason): LIGHTSEQ_TF_NEURST=1 forces the swaps, =0 disables them;
    unset, they are on when a GPU is visible and the op library has CUDA."""
    value = os.environ.get(ENV) if env is None else env
    if value == "1":
        return True, "%s=1" % ENV
    if value == "0":
        return False, "%s=0" % ENV
    if value not in (None, ""):
        raise ValueError("%s must be 0 or 1, got %r" % (ENV, value))
    gpu, cuda = _gpu_available()
    if gpu:
        return True, "a GPU is visible"
    return False, ("no GPU visible" if cuda else "the op library was built without CUDA") + \
        " (set %s=1 to use the CPU twin)" % ENV


class _ScopedLoader(importlib.abc.Loader):
    """The normal loader of a NeurST module, plus our imports and patch."""

    def __init__(self, loader, imports, patch):
        self._loader, self._imports, self._patch = loader, imports, patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__dict__["__builtins__"] = self._imports.builtins
        self._loader.exec_module(module)
        if self._patch is not None:
            self._patch(module)

    def __getattr__(self, name):  # get_source, is_package, resource readers, ...
        return getattr(self._loader, name)


class NeurSTFinder(importlib.abc.MetaPathFinder):
    def __init__(self, imports, patches):
        self.imports, self.patches = imports, patches

    def find_spec(self, fullname, path, target=None):
        if fullname != "neurst" and not fullname.startswith("neurst."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ScopedLoader(spec.loader, self.imports,
                                                self.patches.get(fullname))
                return spec
        return None


def install(env=None):
    """Idempotent. Returns the state dict (mappings, accelerated, reason)."""
    if _state:
        return _state
    if any(m == "neurst" or m.startswith("neurst.") for m in sys.modules):
        sys.stderr.write("lightseq_tf: warning: neurst was imported before the hook was "
                         "installed; neither the compat mappings nor the swaps apply\n")
    on, reason = acceleration_decision(env)
    patches = {}
    if on:
        from lightseq_tf.integrations.neurst import swaps
        native = [c for c in os.environ.get(ENV + "_NATIVE", "").split(",") if c]
        patches = swaps.patches(native)
        if native:
            reason += "; %s_NATIVE=%s" % (ENV, ",".join(native))
    # On or off: NeurST's float16 default is slow on a CPU without our layers too.
    patches = compute_dtype.add_patches(patches)
    imports = compat.NeurSTImports()
    sys.meta_path.insert(0, NeurSTFinder(imports, patches))
    _state.update(mappings=imports.mappings, accelerated=on, reason=reason)
    # stderr, not logging: NeurST's absl logging is not set up yet at import.
    sys.stderr.write("lightseq_tf: NeurST acceleration %s (%s); compat mappings: %s\n" % (
        "on" if on else "off", reason, ", ".join(imports.mappings) or "none"))
    if imports.problem:
        sys.stderr.write("lightseq_tf: warning: %s\n" % imports.problem)
    return _state
