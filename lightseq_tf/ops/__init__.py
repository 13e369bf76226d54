"""Python wrappers for lightseq_tf's TensorFlow ops, each with its gradient."""
from lightseq_tf.ops.layer_norm import layer_norm

__all__ = ["layer_norm"]
