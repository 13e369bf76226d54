"""NeurST is Keras-2 code: tf_keras must be selected before TensorFlow is
first imported, so these tests run in their own pytest process
(`pytest tests/neurst`), with acceleration forced on (CPU twin)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))
# The NeurST demo and its corpus builder (examples, not part of the package).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "neurst"))

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise RuntimeError("run tests/neurst in its own pytest process (TensorFlow was already "
                       "imported with Keras 3)")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("LIGHTSEQ_TF_NEURST", "1")

import lightseq_tf_neurst_hook  # noqa: E402  (installed by the .pth too; idempotent)
import pytest  # noqa: E402

lightseq_tf_neurst_hook.install()


@pytest.fixture(params=["always", "never"], ids=["whole_op", "composed"])
def both_layer_paths(request, monkeypatch):
    """Runs a test with our layers as the whole-layer and decoding-step ops
    (a GPU's path) and composed around TF's MatMul (the CPU's)."""
    from lightseq_tf.layers import _transformer
    monkeypatch.setattr(_transformer.TransformerLayerBase, "whole_layer_op", request.param)
    return request.param
