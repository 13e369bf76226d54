"""NeurST is Keras-2 code: tf_keras must be selected before TensorFlow is
first imported, so these tests run in their own pytest process
(`pytest tests/neurst`), with acceleration forced on (CPU twin)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise RuntimeError("run tests/neurst in its own pytest process (TensorFlow was already "
                       "imported with Keras 3)")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("LIGHTSEQ_TF_NEURST", "1")

import lightseq_tf_neurst_hook  # noqa: E402  (installed by the .pth too; idempotent)

lightseq_tf_neurst_hook.install()
