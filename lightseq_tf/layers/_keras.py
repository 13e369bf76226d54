"""What differs between Keras 3 (tf.keras on TF >= 2.16) and tf_keras
(TF_USE_LEGACY_KERAS=1, NeurST's Keras 2), in one place."""
import contextlib

import tensorflow as tf

keras = tf.keras
KERAS3 = hasattr(keras, "ops")  # tf_keras (Keras 2) has no keras.ops


# Elementwise != usable on Keras 3's symbolic KerasTensors (compute_mask runs on them).
not_equal = keras.ops.not_equal if KERAS3 else tf.not_equal


def variable_scope(name):
    """The scope a nested variable owner builds in: tf.name_scope for tf_keras
    (it names variables), nothing for Keras 3 (which paths them by nesting)."""
    return contextlib.nullcontext() if KERAS3 else tf.name_scope(name)


def call_scope(layer):
    """The name scope `layer.__call__` gives its variables, for a build() that
    runs outside __call__: tf_keras names variables by it (entered here
    unless already current); Keras 3's build wrapper enters it itself."""
    if KERAS3 or tf.get_current_name_scope().rsplit("/", 1)[-1] == layer.name:
        return contextlib.nullcontext()
    return tf.name_scope(layer.name)


def serializable(cls):
    return keras.utils.register_keras_serializable(package="lightseq_tf")(cls)


def add_float32_weight(layer, name, shape, initializer, trainable=True):
    """A float32 variable that is not auto-cast to the compute dtype when read
    in call(): our ops take float32 tables and weights as they are (no
    full-size cast per step) and return float32 gradients for them."""
    kwargs = dict(name=name, shape=shape, initializer=initializer, dtype="float32",
                  trainable=trainable)
    kwargs["autocast" if KERAS3 else "experimental_autocast"] = False
    return layer.add_weight(**kwargs)


def resolve_dtype(dtype, fp16):
    """LightSeq's `fp16=True` means mixed_float16 unless a dtype/policy is given."""
    return dtype if dtype is not None or not fp16 else "mixed_float16"


def draw_seed():
    """A fresh stateless-dropout seed per call (reproducible under tf.random.set_seed)."""
    return tf.random.uniform([], 0, 2**62, dtype=tf.int64)


def by_training(training, fn):
    """fn(True) when training, fn(False) otherwise; `training` may be a Python
    bool, None (inference) or a boolean tensor (tf_keras graph mode)."""
    if training is None or isinstance(training, bool):
        return fn(bool(training))
    return tf.cond(tf.cast(training, tf.bool), lambda: fn(True), lambda: fn(False))


def check_tokens(n, limit, what="tokens"):
    """InvalidArgumentError when n > limit (the configured maximum)."""
    return tf.debugging.assert_less_equal(
        tf.cast(n, tf.int64), tf.constant(limit, tf.int64),
        message="%s exceed max_batch_tokens = %d" % (what, limit))


class ConfigMethod:
    """`Layer.get_config` that is LightSeq's config factory on the class
    (`LSTransformerEmbeddingLayer.get_config(vocab_size=..., ...)`) and Keras'
    serialization method on an instance (`layer.get_config()` -> dict, what
    saving and from_config use): both names are public API."""

    def __init__(self, factory):
        self.factory = factory

    def __get__(self, obj, cls):
        if obj is None:
            return self.factory
        return lambda: cls.keras_config(obj)



def placed_on_gpu():
    """Whether ops created here run on a GPU: inside an explicit device scope,
    that device; otherwise TF's default placement, which is the first GPU
    when one is visible."""
    if not tf.config.list_logical_devices("GPU"):
        return False
    # Eagerly, where an op goes now; in a graph, the enclosing tf.device
    # scope ("" when none: default placement).
    device = tf.zeros([]).device if tf.executing_eagerly() else tf.no_op().device
    return not device or "GPU" in device.upper()
