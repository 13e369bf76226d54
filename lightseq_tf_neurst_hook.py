"""Loaded at interpreter start by lightseq_tf_neurst.pth; does nothing until
`neurst` is imported.

It must stay cheap (it runs in every Python process of the environment), so
it imports nothing heavy itself: on the first `import neurst` it selects
tf_keras for TensorFlow when nothing has imported TensorFlow yet (NeurST is
Keras-2 code), then hands over to lightseq_tf.integrations.neurst.hook, which
maps NeurST's removed-TF imports and swaps in our layers. If that fails
(e.g. a lightseq_tf built for another TensorFlow), NeurST still imports,
with a warning, as if we were not installed.
"""
import os
import sys


class _Trigger:
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "neurst":
            return None
        sys.meta_path.remove(self)
        if os.environ.get("LIGHTSEQ_TF_NEURST_HOOK", "1") == "0":
            return None
        try:
            import importlib.util
            if ("tensorflow" not in sys.modules and "TF_USE_LEGACY_KERAS" not in os.environ
                    and importlib.util.find_spec("tf_keras") is not None):
                os.environ["TF_USE_LEGACY_KERAS"] = "1"
            from lightseq_tf.integrations.neurst import hook
            hook.install()
        except Exception as e:  # never break `import neurst`
            sys.stderr.write("lightseq_tf: NeurST hook not installed (%s: %s)\n"
                             % (type(e).__name__, e))
            return None
        # The import system is iterating sys.meta_path, which just changed
        # under it: find neurst through the new list (the hook's finder first).
        for finder in list(sys.meta_path):
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") \
                else None
            if spec is not None:
                return spec
        return None


def install():
    if not any(isinstance(f, _Trigger) for f in sys.meta_path) and "neurst" not in sys.modules:
        sys.meta_path.insert(0, _Trigger())
