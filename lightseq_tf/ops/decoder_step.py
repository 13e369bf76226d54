"""One incremental decoding step of a Transformer decoder layer (op
LightseqDecoderStep; beam search / greedy, no dropout, no gradient): on the
GPU, cuda/layers/decoder_step.cc on TensorFlow's stream and BLAS; on the
CPU, its C++ twin. Caches in NeurST's layout [batch, length, heads,
head_dim]; the memory's keys/values are projected once per sentence."""
import tensorflow as tf

from lightseq_tf.ops import _whole_layer
from lightseq_tf.ops._library import ops
from lightseq_tf.ops.decoder_layer import PARAMS as _LAYER_PARAMS

# The op's parameter inputs: the decoder layer's less the memory projection.
PARAMS = tuple(p for p in _LAYER_PARAMS if p not in ("kv_kernel", "kv_bias"))


def decoder_step(x, cache_keys, cache_values, cache_length, memory_keys, memory_values,
                 memory_lengths, params, heads, pre_ln, activation="relu", epsilon=1e-6,
                 append=True, name=None):
    """(y [B, n, H], new_cache_keys, new_cache_values) for n new positions.

    append=True (NeurST's dynamic cache): the caches [B, C, heads, d] hold
    every earlier position and grow to [B, C + n, ...]; cache_length may be
    None (it is C). append=False (the static cache, pre-padded to C): the
    new positions go to rows cache_length .. cache_length + n - 1 and attend
    to rows < cache_length + their own offset; rows beyond stay as they are.
    memory_keys / memory_values [B, S, heads, d]: the memory @ kv_kernel +
    kv_bias split in two; keys j >= memory_lengths[b] masked (None: none).
    """
    _whole_layer.check_args(params, PARAMS, activation)
    with tf.name_scope(name or "lightseq_decoder_step"):
        cache_keys = tf.convert_to_tensor(cache_keys)
        memory_keys = tf.convert_to_tensor(memory_keys)
        if cache_length is None:
            if not append:
                raise ValueError("cache_length is needed for a static cache (append=False)")
            cache_length = tf.shape(cache_keys)[1]
        if memory_lengths is None:
            memory_lengths = tf.fill(tf.shape(memory_keys)[:1], tf.shape(memory_keys)[1])
        return ops().lightseq_decoder_step(
            x, cache_keys, cache_values, tf.cast(cache_length, tf.int32), memory_keys,
            memory_values, tf.cast(memory_lengths, tf.int32), *[params[p] for p in PARAMS],
            heads=int(heads), pre_ln=bool(pre_ln), activation=activation, epsilon=float(epsilon),
            append=bool(append))


@tf.RegisterGradient("LightseqDecoderStep")
def _decoder_step_grad(op, *grads):
    raise LookupError(
        "LightseqDecoderStep is the inference-only decoding step and has no gradient: train "
        "through the decoder layer without a cache (lightseq_tf.decoder_layer)")
