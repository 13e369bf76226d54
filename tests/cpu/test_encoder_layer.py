"""LSTransformerEncoderLayer vs NeurST's TransformerEncoderLayer math written
in native TF ops (einsum attention with an additive padding bias, Keras-style
LayerNorm, dense FFN), same weights, dropout off: outputs and gradients of the
input and of every variable. Every test runs both ways the layer computes:
as the whole-layer op (what a GPU runs) and composed around TF's MatMul (the
CPU's choice)."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from lightseq_tf import config as cfg
from tolerances import rel_err

# Relative L2 bounds against the float32 reference. fp32: GEMM/softmax
# reassociation over <= 64 terms through two LayerNorms. Mixed precision: every
# activation is stored in 16 bits (u = 4.9e-4 fp16, 3.9e-3 bf16) across ~20
# dependent steps forward and back (~10-20 u), and a ReLU whose input rounds
# across 0 moves its gradient by O(|dy|): bf16 (8 mantissa bits) reaches ~6 %
# on the first FFN bias gradient, the sum of those flips over the tokens.
TOL = {"float32": 2e-5, "mixed_float16": 1e-2, "mixed_bfloat16": 8e-2}


pytestmark = pytest.mark.usefixtures("both_layer_paths")


def config(pre_ln, act, **kw):
    return cfg.transformer_config(max_batch_tokens=256, max_seq_len=16, hidden_size=32,
                                  intermediate_size=64, nhead=4, attn_prob_dropout_ratio=0.1,
                                  activation_dropout_ratio=0.1, hidden_dropout_ratio=0.1,
                                  pre_layer_norm=pre_ln, activation_fn=act, **kw)


def weights(layer):
    """name -> variable, NeurST-relative paths."""
    out = {}
    for v in layer.trainable_weights:
        path = getattr(v, "path", v.name).split(":")[0]
        out[path.split(layer.name + "/", 1)[1]] = v
    return out


def neurst_reference(x, lengths, w, c, eps):
    """NeurST's encoder layer (transformer_layers.py + multi_head_attention.py)."""
    b, length, h = x.shape
    heads, d = c.nhead, c.hidden_size // c.nhead
    per_query = lengths[..., None] if lengths.shape.rank == 2 else lengths[:, None, None]
    pad = tf.cast(tf.range(length)[None, None, :] >= per_query, x.dtype)
    bias = (pad * -1e9)[:, None]  # [B, 1, L or 1, L]; lengths [B, L]: one per query

    def ln(t, name):
        mean, var = tf.nn.moments(t, [-1], keepdims=True)
        return (t - mean) * tf.math.rsqrt(var + eps) * w[name + "/gamma"] + w[name + "/beta"]

    def attention(t):
        pre = "self_attention_prepost_wrapper/self_attention/"
        qkv = tf.einsum("abc,cd->abd", t, w[pre + "qkv_transform/kernel"]) + \
            w[pre + "qkv_transform/bias"]
        q, k, v = (tf.reshape(u, [b, length, heads, d]) for u in tf.split(qkv, 3, axis=-1))
        q *= d ** -0.5
        weights_ = tf.nn.softmax(tf.einsum("BTNH,BFNH->BNFT", k, q) + bias)
        o = tf.einsum("BNFT,BTNH->BFNH", weights_, v)
        kernel = tf.reshape(w[pre + "output_transform/kernel"], [heads, d, h])
        return tf.einsum("abcd,cde->abe", o, kernel) + w[pre + "output_transform/bias"]

    def ffn(t):
        pre = "ffn_prepost_wrapper/ffn/"
        act = {"relu": tf.nn.relu, "gelu": lambda u: tf.nn.gelu(u, approximate=False)}
        inner = act[c.activation_fn](tf.einsum("abc,cd->abd", t, w[pre + "dense1/kernel"])
                                     + w[pre + "dense1/bias"])
        return tf.einsum("abc,cd->abd", inner, w[pre + "dense2/kernel"]) + w[pre + "dense2/bias"]

    def block(t, fn, name):
        if c.pre_layer_norm:
            return t + fn(ln(t, name + "/ln"))
        return ln(t + fn(t), name + "/ln")

    y = block(x, attention, "self_attention_prepost_wrapper")
    return block(y, ffn, "ffn_prepost_wrapper")


def randomize(layer, seed=0):
    for i, v in enumerate(layer.trainable_weights):
        v.assign(tf.random.stateless_normal(v.shape, [seed, i]) * 0.3 + (1.0 if "gamma" in v.name else 0.0))


@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_matches_neurst_math(pre_ln, act, policy):
    c = config(pre_ln, act)
    layer = lightseq_tf.LSTransformerEncoderLayer(c, dtype=policy)
    x = tf.random.stateless_normal([3, 7, 32], [1, 2])
    lengths = tf.constant([7, 4, 1])
    layer(x, lengths=lengths)
    randomize(layer)
    w = weights(layer)
    dy = tf.random.stateless_normal([3, 7, 32], [3, 4])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = layer(x, lengths=lengths, training=False)
        ref = neurst_reference(x, lengths, w, c, 1e-6)
    names = sorted(w)
    got = tape.gradient(y, [x] + [w[n] for n in names], output_gradients=tf.cast(dy, y.dtype))
    want = tape.gradient(ref, [x] + [w[n] for n in names], output_gradients=dy)
    tol = TOL[policy]
    assert y.dtype == layer.compute_dtype
    assert rel_err(y, ref.numpy()) < tol
    for name, g, r in zip(["x"] + names, got, want):
        assert g is not None, name
        assert rel_err(tf.convert_to_tensor(g), tf.convert_to_tensor(r).numpy()) < tol, name


NEURST_NAMES = [
    "self_attention_prepost_wrapper/ln/gamma", "self_attention_prepost_wrapper/ln/beta",
    "self_attention_prepost_wrapper/self_attention/qkv_transform/kernel",
    "self_attention_prepost_wrapper/self_attention/qkv_transform/bias",
    "self_attention_prepost_wrapper/self_attention/output_transform/kernel",
    "self_attention_prepost_wrapper/self_attention/output_transform/bias",
    "ffn_prepost_wrapper/ln/gamma", "ffn_prepost_wrapper/ln/beta",
    "ffn_prepost_wrapper/ffn/dense1/kernel", "ffn_prepost_wrapper/ffn/dense1/bias",
    "ffn_prepost_wrapper/ffn/dense2/kernel", "ffn_prepost_wrapper/ffn/dense2/bias"]


def test_variable_names_are_neurst_s():
    layer = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"))
    layer(tf.zeros([1, 2, 32]))
    assert sorted(weights(layer)) == sorted(NEURST_NAMES)
    shapes = {n: tuple(v.shape) for n, v in weights(layer).items()}
    assert shapes["self_attention_prepost_wrapper/self_attention/qkv_transform/kernel"] == (32, 96)
    assert shapes["ffn_prepost_wrapper/ffn/dense2/kernel"] == (64, 32)


def test_load_weights_from_and_copy_weights_to():
    x = tf.random.stateless_normal([2, 5, 32], [3, 4])
    a = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"), name="a")
    b = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"), name="b")
    a(x), b(x)
    for v in a.weights:  # LayerNorm parameters too, so every variable matters
        v.assign(tf.random.stateless_normal(v.shape, [7, len(v.name)]))
    assert sorted(a.named_weights()) == sorted(NEURST_NAMES)
    assert not np.array_equal(a(x).numpy(), b(x).numpy())
    b.load_weights_from(a)
    np.testing.assert_array_equal(b(x).numpy(), a(x).numpy())
    c = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"), name="c")
    c(x)
    a.copy_weights_to(c)
    np.testing.assert_array_equal(c(x).numpy(), a(x).numpy())


def test_load_weights_from_rejects_other_layouts():
    small = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"), name="small")
    small(tf.zeros([1, 2, 32]))
    other = lightseq_tf.LSTransformerEncoderLayer(cfg.transformer_config(
        max_batch_tokens=64, max_seq_len=8, hidden_size=32, intermediate_size=128, nhead=4,
        attn_prob_dropout_ratio=0.0, activation_dropout_ratio=0.0, hidden_dropout_ratio=0.0,
        pre_layer_norm=True, activation_fn="relu"), name="other")
    with pytest.raises(ValueError, match="not built"):
        small.load_weights_from(other)
    other(tf.zeros([1, 2, 32]))
    before = [v.numpy() for v in small.weights]
    with pytest.raises(ValueError, match=r"ffn/dense1/kernel: shape \(32, 128\)"):
        small.load_weights_from(other)
    for v, b in zip(small.weights, before):  # nothing copied on error
        np.testing.assert_array_equal(v.numpy(), b)
    dec = lightseq_tf.LSTransformerDecoderLayer(config(True, "relu"), name="dec")
    dec(tf.zeros([1, 2, 32]), memory=tf.zeros([1, 3, 32]))
    with pytest.raises(ValueError, match="encdec_attention"):
        small.load_weights_from(dec)


def test_padding_keys_do_not_matter_and_mask_equals_lengths():
    layer = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"))
    x = tf.random.stateless_normal([2, 6, 32], [5, 5])
    lengths = tf.constant([6, 3])
    y = layer(x, lengths=lengths)
    noisy = tf.concat([x[1:, :3], tf.random.stateless_normal([1, 3, 32], [6, 6])], axis=1)
    y2 = layer(tf.concat([x[:1], noisy], 0), lengths=lengths)
    np.testing.assert_allclose(y[1, :3].numpy(), y2[1, :3].numpy(), rtol=1e-6, atol=1e-6)
    mask = tf.sequence_mask(lengths, 6)
    np.testing.assert_array_equal(layer(x, mask=mask).numpy(), y.numpy())


def test_dropout_reproducible_under_a_global_seed_and_off_at_inference():
    layer = lightseq_tf.LSTransformerEncoderLayer(config(True, "gelu"))
    x = tf.random.stateless_normal([2, 5, 32], [7, 7])
    tf.random.set_seed(11)
    a = layer(x, training=True).numpy()
    tf.random.set_seed(11)
    b = layer(x, training=True).numpy()
    c = layer(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(layer(x).numpy(), layer(x, training=False).numpy())


def test_limits_and_bad_input():
    layer = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_seq_len = 16"):
        layer(tf.zeros([1, 17, 32]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch_tokens = 256"):
        layer(tf.zeros([20, 16, 32]))
    with pytest.raises(ValueError, match="hidden_size = 32"):
        layer(tf.zeros([1, 4, 31]))
    with pytest.raises(ValueError, match=r"\[batch, length, hidden\]"):
        layer(tf.zeros([4, 32]))


def test_config_round_trip_and_saved_model(tmp_path):
    c = lightseq_tf.LSTransformerEncoderLayer.get_config(
        "transformer-base", max_batch_tokens=512, max_seq_len=64, hidden_size=32, nhead=4,
        intermediate_size=64)
    inp = tf.keras.Input([None, 32])
    model = tf.keras.Model(inp, lightseq_tf.LSTransformerEncoderLayer(c)(inp))
    x = tf.random.stateless_normal([2, 5, 32], [8, 8])
    want = model(x).numpy()
    model.save(str(tmp_path / "m.keras"))
    again = tf.keras.models.load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(again(x).numpy(), want, rtol=1e-6, atol=1e-6)
    model.export(str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(loaded.serve(x).numpy(), want, rtol=1e-6, atol=1e-6)


def gradient_check_config(pre_ln):
    """Tiny, smooth (GELU), no dropout: for finite-difference checks."""
    return cfg.transformer_config(max_batch_tokens=64, max_seq_len=8, hidden_size=8,
                                  intermediate_size=16, nhead=2, attn_prob_dropout_ratio=0.0,
                                  activation_dropout_ratio=0.0, hidden_dropout_ratio=0.0,
                                  pre_layer_norm=pre_ln, activation_fn="gelu")


@pytest.mark.parametrize("pre_ln", [True, False])
def test_full_layer_gradient_check(pre_ln):
    """Finite differences of the whole layer (tf.test.compute_gradient): a
    check independent of any reference implementation. GELU, not ReLU: a
    pre-activation within delta of the kink would break central differences.
    float32 with delta 1e-2: truncation ~delta^2 and rounding ~eps/delta are
    both ~1e-4 of the O(1) entries (observed max 7e-5); 2e-3 absolute leaves
    margin for both and still fails on any wrong term of the backward."""
    layer = lightseq_tf.LSTransformerEncoderLayer(gradient_check_config(pre_ln))
    x = tf.random.stateless_normal([2, 3, 8], [11, 12])
    lengths = tf.constant([3, 2])
    layer(x, lengths=lengths)
    theoretical, numerical = tf.test.compute_gradient(
        lambda t: layer(t, lengths=lengths), [x], delta=1e-2)
    assert np.abs(theoretical[0]).max() > 0.1  # not trivially zero
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3)


def _causal_lengths(lengths, length):
    """A monotonic encoder's mask as a key limit per query: min(length[b], i + 1)."""
    return tf.minimum(lengths[:, None], tf.range(length)[None, :] + 1)


@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
def test_lengths_per_query_match_neurst_math(pre_ln):
    """NeurST's attention_monotonic encoder (wait-k): causal and padding."""
    c = config(pre_ln, "gelu")
    layer = lightseq_tf.LSTransformerEncoderLayer(c)
    x = tf.random.stateless_normal([3, 6, 32], [7, 8])
    per_query = _causal_lengths(tf.constant([6, 4, 1]), 6)
    layer(x, lengths=per_query)
    randomize(layer)
    w = weights(layer)
    names = sorted(w)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = layer(x, lengths=per_query, training=False)
        ref = neurst_reference(x, per_query, w, c, layer.epsilon)
    dy = tf.random.stateless_normal(x.shape, [1, 1])
    srcs = [x] + [w[n] for n in names]
    for name, g, r in zip(["x"] + names, tape.gradient(y, srcs, output_gradients=dy),
                          tape.gradient(ref, srcs, output_gradients=dy)):
        assert rel_err(tf.convert_to_tensor(g), tf.convert_to_tensor(r).numpy()) < \
            TOL["float32"], name
    assert rel_err(y, ref.numpy()) < TOL["float32"]


def test_streaming_cache_equals_the_causal_forward():
    """NeurST's incremental_encode protocol: chunks of 2, 1, 3 positions
    appended to the cache, each seeing the cached keys and (per-query
    lengths) its chunk's earlier positions, equal the causal full forward."""
    layer = lightseq_tf.LSTransformerEncoderLayer(config(True, "relu"))
    x = tf.random.stateless_normal([2, 6, 32], [9, 9])
    layer(x)  # builds
    randomize(layer)
    full = layer(x, lengths=_causal_lengths(tf.constant([6, 6]), 6))
    shape = [2, 0, 4, 8]
    cache = {"self_attention": {"keys": tf.zeros(shape), "values": tf.zeros(shape)}}
    outs, start = [], 0
    for n in (2, 1, 3):
        limits = tf.range(start, start + n)[None, :] + 1  # [1, n] over cached + new keys
        outs.append(layer(x[:, start:start + n], lengths=limits if n > 1 else None,
                          cache=cache))
        start += n
    assert cache["self_attention"]["keys"].shape == [2, 6, 4, 8]
    np.testing.assert_allclose(tf.concat(outs, 1).numpy(), full.numpy(),
                               rtol=TOL["float32"], atol=TOL["float32"])
    with pytest.raises(ValueError, match="not a mask"):
        layer(x[:, :1], mask=tf.ones([2, 1], tf.bool), cache=cache)
    with pytest.raises(ValueError, match="must hold"):
        layer(x[:, :1], cache={"self_attention": {"keys": cache["self_attention"]["keys"]}})
    assert set(layer.create_internal_cache()["self_attention"]) == {"keys", "values"}
