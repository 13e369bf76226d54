import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU kernels only, even where a GPU exists
# The numpy Philox reference shared with tests/gpu.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))
# The NeurST demo and its corpus builder (examples, not part of the package).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "neurst"))

import pytest  # noqa: E402


@pytest.fixture(params=["always", "never"], ids=["whole_op", "composed"])
def both_layer_paths(request, monkeypatch):
    """Runs a test with the Transformer layers as whole-layer ops (a GPU's
    path) and composed around TF's MatMul (the CPU's)."""
    from lightseq_tf.layers import _transformer
    monkeypatch.setattr(_transformer.TransformerLayerBase, "whole_layer_op", request.param)
    return request.param
