"""Python wrappers for lightseq_tf's TensorFlow ops, each with its gradient."""
from lightseq_tf.ops.adam import multi_tensor_adam
from lightseq_tf.ops.bias_act_dropout import bias_act_dropout
from lightseq_tf.ops.bias_dropout_residual import bias_dropout_residual
from lightseq_tf.ops.cross_entropy import cross_entropy
from lightseq_tf.ops.decoder_layer import decoder_layer
from lightseq_tf.ops.decoder_step import decoder_step
from lightseq_tf.ops.dropout import dropout
from lightseq_tf.ops.embedding import embedding
from lightseq_tf.ops.encoder_layer import encoder_layer
from lightseq_tf.ops.heads import merge_heads, split_heads
from lightseq_tf.ops.layer_norm import layer_norm
from lightseq_tf.ops.softmax import attn_softmax

__all__ = ["attn_softmax", "bias_act_dropout", "bias_dropout_residual", "cross_entropy",
           "decoder_layer", "decoder_step", "dropout", "embedding", "encoder_layer", "layer_norm",
           "merge_heads", "multi_tensor_adam", "split_heads"]
