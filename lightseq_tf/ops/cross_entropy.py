"""Label-smoothed cross-entropy (op LightseqCrossEntropy) and its gradient."""
import tensorflow as tf

from lightseq_tf.ops._library import ops


def cross_entropy(logits, targets, epsilon=0.0, padding_id=-1, name=None):
    """Per-token label-smoothed loss and nll, plus their sums.

    logits: [..., V] float32/float16/bfloat16 (math in float32); targets:
    logits.shape[:-1] int32/int64. Soft target: 1 - epsilon on the target,
    epsilon / (V - 1) elsewhere (fairseq/NeurST form, without NeurST's
    constant entropy offset). Tokens with target == padding_id give 0.

    Returns (loss, nll, sums): loss and nll float32 shaped like targets;
    sums = float32 [sum(loss), sum(nll), number of non-padding tokens].
    """
    with tf.name_scope(name or "lightseq_cross_entropy"):
        loss, nll, _, sums = ops().lightseq_cross_entropy(
            tf.convert_to_tensor(logits), tf.convert_to_tensor(targets),
            epsilon=float(epsilon), padding_id=int(padding_id))
        return loss, nll, sums


@tf.RegisterGradient("LightseqCrossEntropy")
def _cross_entropy_grad(op, dloss, dnll, unused_dlse, dsums):
    # sums[0] and sums[1] are sums of loss and nll: their gradients broadcast
    # to every token (padding tokens get none in the kernel). The token count
    # and lse are not differentiable.
    dloss = dloss + dsums[0]
    dnll = dnll + dsums[1]
    logits, targets = op.inputs
    nll, lse = op.outputs[1], op.outputs[2]
    dlogits = ops().lightseq_cross_entropy_grad(
        dloss, dnll, logits, targets, lse, nll, epsilon=op.get_attr("epsilon"),
        padding_id=op.get_attr("padding_id"))
    return dlogits, None
