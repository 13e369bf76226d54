"""lightseq_tf: fused Transformer training and decoding ops for TensorFlow 2."""
__version__ = "0.1.0"

from lightseq_tf.ops import (  # noqa: E402
    attn_softmax, bias_act_dropout, bias_dropout_residual, cross_entropy, dropout, embedding,
    layer_norm, merge_heads, multi_tensor_adam, split_heads)
from lightseq_tf import config  # noqa: E402
from lightseq_tf.ops._library import build_info  # noqa: E402
from lightseq_tf.optimizers import LSAdam  # noqa: E402
from lightseq_tf.layers import (  # noqa: E402
    LSCrossEntropyLayer, LSTransformer, LSTransformerDecoderLayer, LSTransformerEmbeddingLayer,
    LSTransformerEncoderLayer)

__all__ = [
    "attn_softmax", "bias_act_dropout", "bias_dropout_residual", "cross_entropy", "dropout",
    "embedding", "layer_norm", "merge_heads", "multi_tensor_adam", "split_heads", "config",
    "LSCrossEntropyLayer", "LSTransformer", "LSTransformerDecoderLayer", "LSTransformerEmbeddingLayer",
    "LSTransformerEncoderLayer", "LSAdam", "build_info", "__version__"]
