"""lightseq_tf: fused Transformer training and decoding ops for TensorFlow 2."""
__version__ = "0.1.0"

from lightseq_tf.ops import layer_norm  # noqa: E402

__all__ = ["layer_norm", "__version__"]
