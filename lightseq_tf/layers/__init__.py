"""Keras layers over the fused ops (Keras 3 and tf_keras alike)."""
from lightseq_tf.layers.cross_entropy import LSCrossEntropyLayer
from lightseq_tf.layers.decoder import LSTransformerDecoderLayer
from lightseq_tf.layers.embedding import LSTransformerEmbeddingLayer
from lightseq_tf.layers.encoder import LSTransformerEncoderLayer
from lightseq_tf.layers.transformer_model import LSTransformer

__all__ = ["LSCrossEntropyLayer", "LSTransformerDecoderLayer", "LSTransformerEmbeddingLayer",
           "LSTransformer", "LSTransformerEncoderLayer"]
