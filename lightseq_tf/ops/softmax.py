"""Attention softmax with scale, key-padding and causal masks and dropout
(op LightseqAttnSoftmax) and its gradient."""
import tensorflow as tf

from lightseq_tf.ops._library import ops
from lightseq_tf.ops.dropout import _seed


def attn_softmax(scores, lengths=None, scale=1.0, causal=False, rate=0.0, seed=0, name=None):
    """dropout(softmax(scale * scores + mask)) over scores [B, heads, Lq, Lk].

    lengths: int32 [B] key lengths (keys j >= lengths[b] are masked; None: no
    padding); causal: query i sees keys j <= i + (Lk - Lq). Fully masked rows
    are zeros. seed: scalar int64 for the dropout mask; 0 <= rate < 1.
    """
    with tf.name_scope(name or "lightseq_attn_softmax"):
        scores = tf.convert_to_tensor(scores)
        if lengths is None:
            lengths = tf.fill(tf.shape(scores)[:1], tf.shape(scores)[3])
        return ops().lightseq_attn_softmax(scores, tf.cast(lengths, tf.int32), _seed(seed),
                                           scale=float(scale), causal=bool(causal),
                                           rate=float(rate))


@tf.RegisterGradient("LightseqAttnSoftmax")
def _attn_softmax_grad(op, dprobs):
    scores, lengths, seed = op.inputs
    dscores = ops().lightseq_attn_softmax_grad(
        dprobs, scores, lengths, seed, scale=op.get_attr("scale"), causal=op.get_attr("causal"),
        rate=op.get_attr("rate"))
    return dscores, None, None
