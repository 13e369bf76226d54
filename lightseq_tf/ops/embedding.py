"""Fused input embedding (op LightseqEmbedding) and its table gradient."""
import tensorflow as tf

from lightseq_tf.ops._library import ops
from lightseq_tf.ops.dropout import _seed


def embedding(ids, table, scale=None, positions=True, pos_offset=0, max_positions=0,
              padding_id=-1, rate=0.0, seed=0, dtype=None, name=None):
    """dropout(scale * table[ids] + sinusoid(pos_offset + position)).

    ids: int32/int64, any rank >= 1; positions run along the last axis
    (rank-1 ids are one decoding step: every token at pos_offset). table:
    [vocab, hidden] float32 or `dtype`. scale: None means sqrt(hidden) (NeurST
    with sinusoids). positions: NeurST's sinusoid signal (float32 math).
    padding_id >= 0: those tokens give zero rows (fairseq/LightSeq); NeurST
    uses -1 (padding embedded like any token). max_positions > 0 bounds
    pos_offset + length. dtype: output dtype (default: the table's).
    Ids outside [0, vocab) raise InvalidArgumentError. The table gradient is
    dense and deterministic.
    """
    with tf.name_scope(name or "lightseq_embedding"):
        table = tf.convert_to_tensor(table)
        dtype = tf.as_dtype(dtype or table.dtype)
        if table.dtype not in (tf.float32, dtype):
            raise ValueError("table must be float32 or the output dtype %s, got %s"
                             % (dtype.name, table.dtype.name))
        if scale is None:
            hidden = table.shape[-1]
            if hidden is None:
                raise ValueError("scale=None needs a table with a static hidden size")
            scale = float(hidden) ** 0.5
        return ops().lightseq_embedding(
            tf.convert_to_tensor(ids), table, tf.convert_to_tensor(pos_offset, tf.int32),
            _seed(seed), T=dtype, scale=float(scale), positions=bool(positions),
            max_positions=int(max_positions), padding_id=int(padding_id), rate=float(rate))


@tf.RegisterGradient("LightseqEmbedding")
def _embedding_grad(op, dy):
    ids, table, _, seed = op.inputs
    dtable = ops().lightseq_embedding_grad(
        dy, ids, tf.shape(table, out_type=tf.int32)[0], seed, Ttable=table.dtype,
        scale=op.get_attr("scale"), padding_id=op.get_attr("padding_id"),
        rate=op.get_attr("rate"))
    return None, dtable, None, None
