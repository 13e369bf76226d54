"""What the encoder and decoder layers share: NeurST-named variable scopes,
input checks, and the attention / FFN blocks over the fused ops."""
import dataclasses
import math

import tensorflow as tf

from lightseq_tf import config as cfg
from lightseq_tf.layers import _keras
from lightseq_tf.ops.bias_act_dropout import bias_act_dropout
from lightseq_tf.ops.bias_dropout_residual import bias_dropout_residual
from lightseq_tf.ops.heads import merge_heads, split_heads
from lightseq_tf.ops.layer_norm import layer_norm
from lightseq_tf.ops.softmax import attn_softmax

keras = _keras.keras


class Weights(keras.layers.Layer):
    """A named scope that owns float32 variables (the path NeurST's nested
    layers give them); `parts` are further Weights."""

    def __init__(self, name, specs=(), parts=(), **kwargs):
        super().__init__(name=name, **kwargs)
        self._specs = list(specs)
        self.parts = {c.name: c for c in parts}
        for c in parts:  # tracked attributes: nested variable paths
            setattr(self, c.name, c)

    def build(self, input_shape=None):
        # Keras 3 scopes variable paths by the layer nesting itself; tf_keras
        # names variables by tf.name_scope, which only __call__ would enter.
        with _keras.variable_scope(self.name):
            for name, shape, init in self._specs:
                setattr(self, name, _keras.add_float32_weight(self, name, shape, init))
            for c in self.parts.values():
                c.build(input_shape)
        self.built = True


def ln_weights(name, h):
    return Weights(name, [("gamma", [h], "ones"), ("beta", [h], "zeros")])


def dense_weights(name, n_in, n_out):
    # NeurST's defaults: glorot_uniform kernels, zero biases.
    return Weights(name, [("kernel", [n_in, n_out], "glorot_uniform"),
                          ("bias", [n_out], "zeros")])


def self_attention_block(h):
    return Weights("self_attention_prepost_wrapper", parts=[
        ln_weights("ln", h),
        Weights("self_attention", parts=[dense_weights("qkv_transform", h, 3 * h),
                                         dense_weights("output_transform", h, h)])])


def ffn_block(h, f):
    return Weights("ffn_prepost_wrapper", parts=[
        ln_weights("ln", h), Weights("ffn", parts=[dense_weights("dense1", h, f),
                                                   dense_weights("dense2", f, h)])])


def to_cache(t):  # [B, heads, L, d] -> NeurST's cache layout [B, L, heads, d]
    return tf.transpose(t, [0, 2, 1, 3])


def from_cache(t):  # [B, L, heads, d] -> [B, heads, L, d]
    return tf.transpose(t, [0, 2, 1, 3])


def append_to_cache(past, k, v, new_past):
    """NeurST's dynamic cache: this call's keys/values [B, heads, n, d] after
    the cached ones; the grown cache goes into new_past; returns all keys/values."""
    k = tf.concat([from_cache(tf.cast(past["keys"], k.dtype)), k], axis=2)
    v = tf.concat([from_cache(tf.cast(past["values"], v.dtype)), v], axis=2)
    new_past["keys"], new_past["values"] = to_cache(k), to_cache(v)
    return k, v


def lengths_of(x, lengths, mask):
    """Key lengths [batch] from explicit lengths, a Keras mask (right padding) or none."""
    if lengths is not None:
        return tf.cast(lengths, tf.int32)
    if mask is not None:
        return tf.reduce_sum(tf.cast(mask, tf.int32), axis=-1)
    return tf.fill(tf.shape(x)[:1], tf.shape(x)[1])


def relative_weights(layer):
    """{variable path below the layer's own name: variable} for any Keras layer
    (Keras 3 keeps the path in `.path`, tf_keras in `.name` with ":0")."""
    if not layer.built:
        raise ValueError("layer %r is not built yet: call it once (or build()) first"
                         % layer.name)
    out = {}
    for v in layer.weights:
        path = getattr(v, "path", None) or v.name.split(":")[0]
        out[path.split(layer.name + "/", 1)[-1]] = v
    return out


def copy_weights(src, dst):
    """Assign src's weights to dst's, matched by NeurST-relative path."""
    a, b = relative_weights(src), relative_weights(dst)
    problems = ["missing in %s: %s" % (src.name, n) for n in sorted(set(b) - set(a))]
    problems += ["not in %s: %s" % (dst.name, n) for n in sorted(set(a) - set(b))]
    problems += ["%s: shape %s in %s, %s in %s" % (n, a[n].shape, src.name, b[n].shape, dst.name)
                 for n in sorted(set(a) & set(b)) if tuple(a[n].shape) != tuple(b[n].shape)]
    if problems:
        raise ValueError("cannot copy weights from %r to %r: %s"
                         % (src.name, dst.name, "; ".join(problems)))
    for n, v in b.items():
        v.assign(tf.cast(a[n], v.dtype))


class TransformerLayerBase(keras.layers.Layer):
    """Config handling, checks and the shared blocks of both layers.

    Each layer computes one of two ways, the same function with the same
    dropout masks: one whole-layer op each way (what a GPU runs:
    cuda/layers on TF's stream and BLAS), or its fused kernels composed
    around TF's MatMul (the CPU's choice: TF's CPU MatMul is oneDNN, which a
    custom op cannot call, and the whole-layer op's CPU twin over Eigen's GEMM
    is slower; benchmarks/results/cpu_neurst_layers.json). `whole_layer_op`:
    "auto" (by where the ops are placed), "always" or "never".
    """

    whole_layer_op = "auto"
    _caller_cache = None

    get_config = _keras.ConfigMethod(cfg.transformer_config)

    def __init__(self, config, epsilon=1e-6, dtype=None, **kwargs):
        self.config = config if isinstance(config, cfg.TransformerConfig) \
            else cfg.transformer_config(**config)
        self.epsilon = float(epsilon)
        super().__init__(dtype=_keras.resolve_dtype(dtype, self.config.fp16), **kwargs)
        self.supports_masking = True

    def __call__(self, *args, **kwargs):
        # NeurST's protocol updates the caller's cache dict in place; Keras 3
        # hands call() a converted copy of nested arguments, so keep the
        # caller's own dict to write the new keys and values into (set past
        # the trackable __setattr__, which would wrap the dict in a copy).
        object.__setattr__(self, "_caller_cache", kwargs.get("cache"))
        try:
            return super().__call__(*args, **kwargs)
        finally:
            object.__setattr__(self, "_caller_cache", None)

    def _self_attention_cache(self, length):
        """NeurST's per-layer cache: keys/values [length, heads, head_dim]
        (callers tile it by batch)."""
        c = self.config
        shape = [length, c.nhead, c.hidden_size // c.nhead]
        return {"self_attention": {"keys": tf.zeros(shape, self.compute_dtype),
                                   "values": tf.zeros(shape, self.compute_dtype)}}

    def _store_cache(self, cache, new_past):
        """The grown self-attention cache into the call's and the caller's dict."""
        cache["self_attention"] = new_past
        if self._caller_cache is not None:
            self._caller_cache["self_attention"] = new_past

    def _past(self, cache, x):
        """cache["self_attention"] checked (NeurST's layout [batch, length,
        heads, head_dim]) and the checks that need the data."""
        past = cache.get("self_attention")
        if past is None or set(past) != {"keys", "values"}:
            raise ValueError('cache["self_attention"] must hold "keys" and "values" '
                             "(create_decoding_internal_cache / create_internal_cache)")
        c = self.config
        want = [None, None, c.nhead, c.hidden_size // c.nhead]
        checks = []
        for name in ("keys", "values"):
            t = past[name]
            if t.shape.rank != 4 or any(w is not None and s is not None and s != w
                                        for s, w in zip(t.shape, want)):
                raise ValueError('cache["self_attention"]["%s"] must be [batch, length, %d, '
                                 '%d], got %s' % (name, want[2], want[3], t.shape))
            checks.append(tf.debugging.assert_equal(
                tf.shape(t)[0], tf.shape(x)[0],
                message='cache["self_attention"]["%s"] batch differs from the input\'s' % name))
        return past, checks

    def _checked_input(self, inputs, length_limit_of=None):
        """inputs cast to the compute dtype, plus the ops that check the
        configured limits (run before the layer's first op)."""
        c = self.config
        x = tf.cast(inputs, self.compute_dtype)
        if x.shape.rank != 3:
            raise ValueError("inputs must be [batch, length, hidden], got shape %s" % x.shape)
        if x.shape[-1] is not None and x.shape[-1] != c.hidden_size:
            raise ValueError("inputs' last dimension must be hidden_size = %d, got %d"
                             % (c.hidden_size, x.shape[-1]))
        shape = tf.shape(x)
        length = shape[1] if length_limit_of is None else length_limit_of
        checks = [_keras.check_tokens(shape[0] * shape[1], c.max_batch_tokens),
                  tf.debugging.assert_less_equal(
                      length, c.max_seq_len, message="length exceeds max_seq_len = %d"
                      % c.max_seq_len)]
        return x, checks

    def _use_whole_layer_op(self):
        if self.whole_layer_op not in ("auto", "always", "never"):
            raise ValueError("whole_layer_op must be auto, always or never, got %r"
                             % (self.whole_layer_op,))
        return self.whole_layer_op == "always" or (
            self.whole_layer_op == "auto" and _keras.placed_on_gpu())

    def _op_attrs(self, train):
        """The whole-layer ops' attributes from the config."""
        c = self.config
        rate = (lambda r: r) if train else (lambda r: 0.0)
        return dict(heads=c.nhead, pre_ln=c.pre_layer_norm, activation=c.activation_fn,
                    attn_dropout=rate(c.attn_prob_dropout_ratio),
                    act_dropout=rate(c.activation_dropout_ratio),
                    hidden_dropout=rate(c.hidden_dropout_ratio), epsilon=self.epsilon)

    def _w(self, v):
        return tf.cast(v, self.compute_dtype)

    def _norm(self, t, ln):
        return layer_norm(t, self._w(ln.gamma), self._w(ln.beta), self.epsilon)

    def _project(self, t, dense, splits):
        """t [B, L, H] @ kernel + bias, split into heads: [splits, B, heads, L, d]."""
        b, length = tf.shape(t)[0], tf.shape(t)[1]
        out = tf.matmul(tf.reshape(t, [-1, self.config.hidden_size]), self._w(dense.kernel))
        out = tf.reshape(out, [b, length, splits * self.config.hidden_size])
        return split_heads(out, self._w(dense.bias), self.config.nhead, splits)

    def _attend(self, q, k, v, key_lengths, causal, out_dense, residual, seed, train):
        """residual + dropout(merge(softmax(q k^T) v) Wo + bo); q/k/v [B, heads, L, d].
        key_lengths: [B] (keys >= the length masked for every query) or
        [B or 1, Lq] (a length per query, e.g. wait-k's lagged memory or a
        monotonic encoder's causal-and-padding mask; then not `causal`)."""
        c = self.config
        b, length = tf.shape(residual)[0], tf.shape(residual)[1]
        scores = tf.matmul(q, k, transpose_b=True)
        per_query = key_lengths.shape.rank == 2
        if per_query:
            if causal:
                raise ValueError("per-query key lengths already hold the causal mask")
            # Each query its own row of the fused softmax: [B, h, Lq, Lk] -> [B * Lq, h, 1, Lk].
            shape = tf.shape(scores)
            scores = tf.reshape(tf.transpose(scores, [0, 2, 1, 3]),
                                [shape[0] * shape[2], shape[1], 1, shape[3]])
            key_lengths = tf.reshape(tf.broadcast_to(key_lengths, [shape[0], shape[2]]), [-1])
        probs = attn_softmax(scores, key_lengths,
                             scale=1.0 / math.sqrt(c.hidden_size // c.nhead), causal=causal,
                             rate=c.attn_prob_dropout_ratio if train else 0.0, seed=seed)
        if per_query:
            probs = tf.transpose(tf.reshape(probs, [shape[0], shape[2], shape[1], shape[3]]),
                                 [0, 2, 1, 3])
        context = tf.reshape(merge_heads(tf.matmul(probs, v)), [-1, c.hidden_size])
        out = tf.reshape(tf.matmul(context, self._w(out_dense.kernel)), [b, length, c.hidden_size])
        return bias_dropout_residual(out, self._w(out_dense.bias), residual,
                                     c.hidden_dropout_ratio if train else 0.0, seed + 1)

    def _block(self, x, ln, body):
        """NeurST's PrePostProcessingWrapper: pre-LN x + body(LN(x)), post-LN LN(x + body(x))
        (body adds the residual itself, fused with its bias and dropout)."""
        if self.config.pre_layer_norm:
            return body(self._norm(x, ln), x)
        return self._norm(body(x, x), ln)

    def _ffn(self, x, block, seed, train):
        c = self.config
        d1, d2 = block.parts["ffn"].parts["dense1"], block.parts["ffn"].parts["dense2"]

        def body(t, residual):
            b, length = tf.shape(t)[0], tf.shape(t)[1]
            inner = tf.matmul(tf.reshape(t, [-1, c.hidden_size]), self._w(d1.kernel))
            inner = bias_act_dropout(inner, self._w(d1.bias),
                                     c.activation_dropout_ratio if train else 0.0, seed,
                                     c.activation_fn)
            out = tf.reshape(tf.matmul(inner, self._w(d2.kernel)), [b, length, c.hidden_size])
            return bias_dropout_residual(out, self._w(d2.bias), residual,
                                         c.hidden_dropout_ratio if train else 0.0, seed + 1)

        return self._block(x, block.parts["ln"], body)

    def compute_output_shape(self, input_shape):
        return input_shape

    def named_weights(self):
        """{NeurST-relative path ("ffn_prepost_wrapper/ffn/dense1/kernel"): variable}."""
        return relative_weights(self)

    def load_weights_from(self, layer):
        """Copy the weights of a built layer with NeurST's variable layout:
        NeurST's own TransformerEncoderLayer / TransformerDecoderLayer (tf_keras),
        or another of ours. Raises ValueError naming any missing, extra or
        mis-shaped variable; copies nothing then."""
        copy_weights(layer, self)

    def copy_weights_to(self, layer):
        """The reverse of load_weights_from (e.g. into a native NeurST layer)."""
        copy_weights(self, layer)

    def keras_config(self):
        base = keras.layers.Layer.get_config(self)
        base.update(config=dataclasses.asdict(self.config), epsilon=self.epsilon)
        return base
