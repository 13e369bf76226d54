"""Head split (+ fused QKV bias) and merge around attention
(ops LightseqSplitHeads / LightseqMergeHeads), each the other's gradient."""
import tensorflow as tf

from lightseq_tf.ops._library import ops


def split_heads(x, bias, heads, splits=1, name=None):
    """x [B, L, splits*heads*d] + bias [splits*heads*d] -> [splits, B, heads, L, d]
    (splits=3 for a fused QKV projection: out[0], out[1], out[2] are Q, K, V)."""
    with tf.name_scope(name or "lightseq_split_heads"):
        x = tf.convert_to_tensor(x)
        if bias is None:
            bias = tf.zeros(tf.shape(x)[-1:], x.dtype)
        return ops().lightseq_split_heads(x, tf.convert_to_tensor(bias), heads=int(heads),
                                          splits=int(splits))


def merge_heads(x, name=None):
    """x [splits, B, heads, L, d] (or [B, heads, L, d]) -> [B, L, splits*heads*d]."""
    with tf.name_scope(name or "lightseq_merge_heads"):
        x = tf.convert_to_tensor(x)
        if x.shape.rank == 4:
            x = x[None]
        return ops().lightseq_merge_heads(x)


@tf.RegisterGradient("LightseqSplitHeads")
def _split_heads_grad(op, dout):
    dx = ops().lightseq_merge_heads(dout)
    return dx, tf.reduce_sum(dx, axis=[0, 1])


@tf.RegisterGradient("LightseqMergeHeads")
def _merge_heads_grad(op, dout):
    x = op.inputs[0]
    splits, heads = x.shape[0], x.shape[2]
    if splits is None or heads is None:
        raise ValueError("merge_heads' gradient needs static splits and heads dimensions")
    return ops().lightseq_split_heads(dout, tf.zeros(tf.shape(dout)[-1:], dout.dtype),
                                      heads=heads, splits=splits)
