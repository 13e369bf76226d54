"""What the hook changes in NeurST once acceleration is on: `PATCHES` maps a
NeurST module to (component, the function run right after its body).

- TransformerEncoder / TransformerDecoder: after NeurST's own build() made
  its (not yet built, variable-less) layers, each supported layer is
  replaced by ours with the same name, and the output LayerNormalization by
  ours. A stack or layer we do not support stays NeurST's, and the log says
  why (one line per stack).
- LabelSmoothedCrossEntropy: the per-token loss comes from our fused op
  (float16 logits stay float16; no [tokens, vocab] one-hot).
- `optimizer.class: adam` (any of NeurST's names for it) builds LSAdam, the
  fused multi-tensor Adam with Keras Adam's update, slots and config.
- PositionEmbeddingWrapper with NeurST's sinusoids over a word embedding:
  the lookup, the sqrt(dim) scale and the sinusoid are our fused embedding
  op (float32 table read once, positions in float32 also under float16).
- Trainer / CustomCheckpointCallback: the optimizer's state saved with every
  checkpoint and, on a restart, restored with the data stream advanced past
  the consumed batches (resume.py: exact resumption).
"""
import contextlib
import threading

import tensorflow as tf
from absl import logging

from lightseq_tf.integrations.neurst import layers, resume
from lightseq_tf.ops.cross_entropy import cross_entropy
from lightseq_tf.ops.embedding import embedding


_native = threading.local()


@contextlib.contextmanager
def native():
    """NeurST's own stacks, criterion and embedding for what is built or
    called inside (e.g. a native reference model in an accelerated process)."""
    before = getattr(_native, "on", False)
    _native.on = True
    try:
        yield
    finally:
        _native.on = before


def _is_native():
    return getattr(_native, "on", False)


def _swap_stack(stack, layer_cls, stack_unsupported):
    """Replace the layers of a just-built NeurST stack; returns the log line."""
    name = "%s %r" % (type(stack).__name__, stack.name)
    if stack_unsupported:
        return "%s kept native (%s)" % (name, stack_unsupported)
    ours, kept = [], []
    for layer in stack._stacking_layers:
        try:
            ours.append(layer_cls.from_native(layer))
        except layers.Unsupported as why:
            ours.append(layer)
            kept.append("%s: %s" % (layer.name, why))
    stack._stacking_layers = ours
    norm = getattr(stack, "_output_norm_layer", None)
    if norm is not None:
        stack._output_norm_layer = layers.LayerNormalization(
            epsilon=norm.epsilon, dtype=norm.dtype_policy, name=norm.name)
    done = len(ours) - len(kept)
    notes = [note for flag, note in (
        (stack.get_config().get("attention_monotonic"), "monotonic: a key limit per query"),
        (any(not getattr(layer, "cross_attention", True) for layer in ours),
         "no cross-attention")) if flag]
    return "%s: %d of %d layers accelerated%s%s%s" % (
        name, done, len(ours), " + output_ln" if norm is not None else "",
        " (%s)" % ", ".join(notes) if notes else "",
        "; native: " + ", ".join(kept) if kept else "")


def _quantized():
    from neurst.layers.quantization.quant_layers import QuantLayer
    return "quantization enabled" if QuantLayer.enable_quant else None


def _patch_build(cls, layer_cls, unsupported):
    native_build = cls.build

    def build(self, input_shape):
        native_build(self, input_shape)
        if _is_native():
            return
        logging.info("lightseq_tf: " + _swap_stack(self, layer_cls, unsupported(self)))

    build.__doc__ = native_build.__doc__
    cls.build = build


def patch_transformer_encoder(module):
    _patch_build(module.TransformerEncoder, layers.NeurSTEncoderLayer, lambda _: _quantized())


def patch_transformer_decoder(module):
    _patch_build(module.TransformerDecoder, layers.NeurSTDecoderLayer, lambda _: _quantized())


def patch_label_smoothed_cross_entropy(module):
    cls = module.LabelSmoothedCrossEntropy
    native_call = cls.__call__

    def __call__(self, model_inp, model_out):
        """NeurST's (nll_sum, n_samples, n_tokens), per-token loss from our op."""
        logits = model_out["logits"] if isinstance(model_out, dict) else model_out
        if _is_native() or not module.is_tf_tensor(logits):
            return native_call(self, model_inp, model_out)  # NeurST's own error
        labels = model_inp["trg"]
        ls = float(self._label_smoothing)
        loss, _, _ = cross_entropy(logits, labels, epsilon=ls)
        if ls:  # NeurST reports the loss minus the soft target's entropy
            vocab = tf.cast(tf.shape(logits)[-1], tf.float32)
            low = ls / (vocab - 1.0)
            loss += (1.0 - ls) * tf.math.log(1.0 - ls) + (vocab - 1.0) * low * tf.math.log(
                low + 1e-20)
        padding = model_inp.get("trg_padding", model_inp.get("padding"))
        if padding is None:
            length = model_inp.get("trg_length", model_inp.get("length"))
            weights = module.input_length_to_nonpadding(length, tf.shape(labels)[1], tf.float32)
        else:
            weights = tf.cast(1 - padding, tf.float32)
        if model_inp.get("mask") is not None:
            weights *= tf.cast(model_inp["mask"], tf.float32)
        n_samples = tf.cast(tf.expand_dims(tf.shape(labels)[0], axis=0), tf.float32)
        return tf.reduce_sum(loss * weights, axis=1), n_samples, tf.reduce_sum(weights, axis=1)

    cls.__call__ = __call__


def _float32_table(variable):
    """The variable as float32 even inside a mixed-precision call, where
    tf_keras' AutoCastVariable reads as the compute dtype (our op takes the
    float32 table itself and casts rows as it writes them)."""
    return tf.convert_to_tensor(getattr(variable, "_variable", variable))


def patch_position_embedding(module):
    cls = module.PositionEmbeddingWrapper
    native_call = cls.call

    def call(self, inputs, time=None, **kwargs):
        """NeurST's sinusoid embedding, fused; other cases are NeurST's own."""
        from neurst.layers.modalities.text_modalities import WordEmbeddingSharedWeights
        words = self._embedding_layer
        if (_is_native() or kwargs.get("mode", "embedding") != "embedding"
                or self._timing != "sinusoids" or self._sinusoids_as_variable
                or type(words) is not WordEmbeddingSharedWeights or _quantized()
                or inputs.shape.rank not in (1, 2) or (inputs.shape.rank == 1 and time is None)):
            return native_call(self, inputs, time=time, **kwargs)
        if not words.built:
            words(inputs)  # creates its table under its own name scope
        return embedding(inputs, _float32_table(words._shared_weights),
                         scale=self._embedding_dim ** 0.5, positions=True,
                         pos_offset=0 if time is None else time, dtype=words.compute_dtype)

    cls.call = call


def patch_optimizers(module):
    """NeurST logs the class it creates ("Creating optimizer: ...LSAdam")."""
    from neurst.utils.registry import REGISTRIES

    from lightseq_tf.optimizers import LSAdam
    registry = REGISTRIES["tf"][module.OPTIMIZER_REGISTRY_NAME]
    for name, cls in list(registry.items()):
        if cls is module.Adam:
            registry[name] = LSAdam
    module.Adam = LSAdam


# NeurST module -> (component, patch). LIGHTSEQ_TF_NEURST_NATIVE=criterion,optimizer
# (any of the components) keeps those NeurST's own, e.g. to bisect a difference.
PATCHES = {
    "neurst.layers.encoders.transformer_encoder": ("layers", patch_transformer_encoder),
    "neurst.layers.decoders.transformer_decoder": ("layers", patch_transformer_decoder),
    "neurst.criterions.label_smoothed_cross_entropy": ("criterion",
                                                       patch_label_smoothed_cross_entropy),
    "neurst.optimizers": ("optimizer", patch_optimizers),
    "neurst.layers.common_layers": ("embedding", patch_position_embedding),
    "neurst.training.callbacks": ("resume", resume.patch_checkpoint_callback),
    "neurst.exps.trainer": ("resume", resume.patch_trainer),
}
COMPONENTS = ("layers", "criterion", "optimizer", "embedding", "resume")


def patches(native=()):
    """{module: patch} without the components named in `native`."""
    unknown = set(native) - set(COMPONENTS)
    if unknown:
        raise ValueError("LIGHTSEQ_TF_NEURST_NATIVE names unknown component(s) %s (known: %s)"
                         % (", ".join(sorted(unknown)), ", ".join(COMPONENTS)))
    return {m: p for m, (c, p) in PATCHES.items() if c not in native}
