"""lightseq_tf: fused Transformer training and decoding ops for TensorFlow 2."""
__version__ = "0.1.0"

from lightseq_tf.ops import bias_act_dropout, bias_dropout_residual, dropout, layer_norm  # noqa: E402

__all__ = ["bias_act_dropout", "bias_dropout_residual", "dropout", "layer_norm", "__version__"]
