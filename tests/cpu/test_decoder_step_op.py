"""LightseqDecoderStep (the incremental decoding step op, CPU twin) against
an independent float64 numpy step with a KV cache; a run of steps against the
whole-layer op's training forward (dropout off); the dynamic (append) and
static (pre-padded) caches; 16-bit dtypes; bad input, each argument named;
the empty cases; no gradient; inside tf.while_loop. The Keras layer's
incremental path through this op is tested by test_decoder_layer.py (its
whole-op run)."""
import math

import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from lightseq_tf.ops.decoder_layer import PARAMS as LAYER_PARAMS
from lightseq_tf.ops.decoder_step import PARAMS
from tolerances import REL, rel_err

B, H, HEADS, F, S = 3, 32, 4, 64, 5
D = H // HEADS


def params(seed=0, dtype=tf.float32):
    rng = np.random.default_rng(seed)
    shapes = {"ln1_gamma": [H], "ln1_beta": [H], "qkv_kernel": [H, 3 * H], "qkv_bias": [3 * H],
              "out_kernel": [H, H], "out_bias": [H], "ln2_gamma": [H], "ln2_beta": [H],
              "q_kernel": [H, H], "q_bias": [H], "kv_kernel": [H, 2 * H], "kv_bias": [2 * H],
              "cross_out_kernel": [H, H], "cross_out_bias": [H], "ln3_gamma": [H],
              "ln3_beta": [H], "ffn1_kernel": [H, F], "ffn1_bias": [F], "ffn2_kernel": [F, H],
              "ffn2_bias": [H]}
    out = {}
    for n in LAYER_PARAMS:
        t = rng.normal(0, 0.3, shapes[n])
        if "kernel" in n:
            t = t * 3 / np.sqrt(shapes[n][0])
        if "gamma" in n:
            t = t + 1
        out[n] = tf.cast(t, dtype)
    return out


def np_step(p, x, keys, values, t, mem_k, mem_v, mem_lengths, pre_ln, act):
    """float64 numpy: y and the caches after writing x's positions at t.."""
    p = {k: np.asarray(tf.cast(v, tf.float64)) for k, v in p.items()}
    x = np.asarray(tf.cast(x, tf.float64))
    keys, values = (np.array(tf.cast(c, tf.float64)) for c in (keys, values))
    mem_k, mem_v = (np.asarray(tf.cast(m, tf.float64)) for m in (mem_k, mem_v))
    b, n, h = x.shape

    def ln(u, i):
        mu, var = u.mean(-1, keepdims=True), u.var(-1, keepdims=True)
        return (u - mu) / np.sqrt(var + 1e-6) * p["ln%d_gamma" % i] + p["ln%d_beta" % i]

    def attend(q, k, v, visible):  # q [b, n, heads, d], k / v [b, L, heads, d]
        s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D)
        s = np.where(visible, s, -np.inf)
        m = np.max(s, -1, keepdims=True)
        e = np.where(visible, np.exp(s - np.where(np.isfinite(m), m, 0)), 0)
        pr = e / np.maximum(e.sum(-1, keepdims=True), 1e-300)
        return np.einsum("bhqk,bkhd->bqhd", pr, v).reshape(b, n, h)

    def self_att(u):
        q, k, v = np.split(u @ p["qkv_kernel"] + p["qkv_bias"], 3, -1)
        keys[:, t:t + n] = k.reshape(b, n, HEADS, D)
        values[:, t:t + n] = v.reshape(b, n, HEADS, D)
        vis = np.arange(t + n)[None, :] <= t + np.arange(n)[:, None]
        ctx = attend(q.reshape(b, n, HEADS, D), keys[:, :t + n], values[:, :t + n],
                     vis[None, None])
        return ctx @ p["out_kernel"] + p["out_bias"]

    def cross_att(u):
        q = (u @ p["q_kernel"] + p["q_bias"]).reshape(b, n, HEADS, D)
        vis = np.arange(mem_k.shape[1])[None, :] < np.asarray(mem_lengths)[:, None]
        return attend(q, mem_k, mem_v, vis[:, None, None, :]) @ p["cross_out_kernel"] + \
            p["cross_out_bias"]

    def ffn(u):
        f = u @ p["ffn1_kernel"] + p["ffn1_bias"]
        f = np.maximum(f, 0) if act == "relu" else 0.5 * f * (1 + np.vectorize(math.erf)(
            f / np.sqrt(2)))
        return f @ p["ffn2_kernel"] + p["ffn2_bias"]

    y = x
    for i, fn in enumerate([self_att, cross_att, ffn], 1):
        y = y + fn(ln(y, i)) if pre_ln else ln(y + fn(y), i)
    return y, keys, values


def case(n=1, cached=2, capacity=None, dtype=tf.float32, seed=1):
    rng = np.random.default_rng(seed)
    cap = cached if capacity is None else capacity
    g = lambda *shape: tf.cast(rng.normal(size=shape), dtype)  # noqa: E731
    return (g(B, n, H), g(B, cap, HEADS, D), g(B, cap, HEADS, D), g(B, S, HEADS, D),
            g(B, S, HEADS, D), tf.constant([S, 2, 4]))


def step(p, x, keys, values, t, mem_k, mem_v, lengths, pre_ln=True, act="relu", append=True):
    return lightseq_tf.ops.decoder_step(x, keys, values, t, mem_k, mem_v, lengths, p, HEADS,
                                        pre_ln, act, append=append)


@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("n", [1, 3])
def test_append_matches_numpy(pre_ln, act, n):
    p = params()
    x, keys, values, mem_k, mem_v, lengths = case(n=n, cached=4)
    y, nk, nv = step(p, x, keys, values, None, mem_k, mem_v, lengths, pre_ln, act)
    pad = tf.zeros([B, n, HEADS, D])
    ry, rk, rv = np_step(p, x, tf.concat([keys, pad], 1), tf.concat([values, pad], 1), 4, mem_k,
                         mem_v, lengths, pre_ln, act)
    assert nk.shape == (B, 4 + n, HEADS, D)
    assert rel_err(y, ry) < REL[tf.float32]
    assert rel_err(nk, rk) < REL[tf.float32] and rel_err(nv, rv) < REL[tf.float32]
    np.testing.assert_array_equal(nk[:, :4].numpy(), keys.numpy())  # old rows as they were


@pytest.mark.parametrize("t", [0, 3, 6])
def test_static_cache_matches_numpy(t):
    p = params()
    x, keys, values, mem_k, mem_v, lengths = case(n=1, cached=7)
    y, nk, nv = step(p, x, keys, values, t, mem_k, mem_v, lengths, append=False)
    ry, rk, rv = np_step(p, x, keys, values, t, mem_k, mem_v, lengths, True, "relu")
    assert nk.shape == keys.shape
    assert rel_err(y, ry) < REL[tf.float32]
    assert rel_err(nk, rk) < REL[tf.float32] and rel_err(nv, rv) < REL[tf.float32]
    untouched = [i for i in range(7) if i != t]
    np.testing.assert_array_equal(tf.gather(nk, untouched, axis=1).numpy(),
                                  tf.gather(keys, untouched, axis=1).numpy())


@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("append", [True, False], ids=["append", "static"])
def test_steps_reproduce_the_training_forward(pre_ln, append):
    """Decoding a sequence position by position gives the whole-layer op's
    training forward (dropout off) at every position."""
    p = params(2)
    L = 6
    x = tf.random.stateless_normal([B, L, H], [5, 6])
    memory = tf.random.stateless_normal([B, S, H], [7, 8])
    lengths = tf.constant([S, 1, 3])
    full = lightseq_tf.ops.decoder_layer(x, memory, lengths, p, HEADS, pre_ln)
    kv = tf.reshape(memory @ p["kv_kernel"] + p["kv_bias"], [B, S, 2, HEADS, D])
    mem_k, mem_v = kv[:, :, 0], kv[:, :, 1]
    cap = 0 if append else L
    keys = values = tf.zeros([B, cap, HEADS, D])
    outs = []
    for t in range(L):
        y, keys, values = step(p, x[:, t:t + 1], keys, values, None if append else t, mem_k,
                               mem_v, lengths, pre_ln, append=append)
        outs.append(y)
    assert rel_err(tf.concat(outs, 1), full) < REL[tf.float32]


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=["fp16", "bf16"])
def test_16_bit(dtype):
    """Against the float32 op on the same rounded inputs: within a few
    roundings of the dtype (each of the ~12 rounded intermediates adds one)."""
    p = params(3, dtype)
    x, keys, values, mem_k, mem_v, lengths = case(n=2, cached=3, dtype=dtype)
    y, nk, _ = step(p, x, keys, values, None, mem_k, mem_v, lengths)
    p32 = {k: tf.cast(v, tf.float32) for k, v in p.items()}
    c32 = [tf.cast(t, tf.float32) for t in (x, keys, values, mem_k, mem_v)]
    y32, nk32, _ = step(p32, c32[0], c32[1], c32[2], None, c32[3], c32[4], lengths)
    assert y.dtype == dtype and nk.dtype == dtype
    assert rel_err(y, y32) < 8 * REL[dtype]
    assert rel_err(nk, nk32) < 2 * REL[dtype]


def test_in_a_while_loop_with_a_static_cache():
    """NeurST's static mode under tf.function: the cache is a loop variable
    written at the loop counter (the op may reuse its buffer)."""
    p = params(4)
    L = 5
    x = tf.random.stateless_normal([B, L, H], [1, 1])
    memory = tf.random.stateless_normal([B, S, H], [2, 2])
    lengths = tf.constant([S, 2, 4])
    kv = tf.reshape(memory @ p["kv_kernel"] + p["kv_bias"], [B, S, 2, HEADS, D])

    @tf.function
    def decode():
        def body(t, keys, values, ys):
            y, keys, values = step(p, x[:, t:t + 1], keys, values, t, kv[:, :, 0], kv[:, :, 1],
                                   lengths, append=False)
            return t + 1, keys, values, ys.write(t, y[:, 0])
        zeros = tf.zeros([B, L, HEADS, D])
        _, keys, _, ys = tf.while_loop(lambda t, *_: t < L, body,
                                       (0, zeros, zeros, tf.TensorArray(tf.float32, L)))
        return tf.transpose(ys.stack(), [1, 0, 2]), keys

    ys, keys = decode()
    full = lightseq_tf.ops.decoder_layer(x, memory, lengths, p, HEADS, True)
    assert rel_err(ys, full) < REL[tf.float32]
    mean, var = tf.nn.moments(x, [-1], keepdims=True)  # pre-LN: the keys of LN1(x)
    ln1 = (x - mean) * tf.math.rsqrt(var + 1e-6) * p["ln1_gamma"] + p["ln1_beta"]
    want = ln1 @ p["qkv_kernel"][:, H:2 * H] + p["qkv_bias"][H:2 * H]
    assert rel_err(keys, tf.reshape(want, [B, L, HEADS, D])) < REL[tf.float32]


def test_bad_input_names_the_argument():
    p = params()
    x, keys, values, mem_k, mem_v, lengths = case(n=1, cached=4)
    err = tf.errors.InvalidArgumentError
    with pytest.raises(err, match="cache_keys must have shape"):
        step(p, x, keys[:, :, :2], values[:, :, :2], None, mem_k, mem_v, lengths)
    with pytest.raises((err, ValueError), match="cache_values|Dimension|shape"):
        step(p, x, keys, values[:, :3], None, mem_k, mem_v, lengths)
    with pytest.raises(err, match=r"cache_length \(3\) must equal the cache's length 4"):
        step(p, x, keys, values, 3, mem_k, mem_v, lengths)
    with pytest.raises(err, match=r"position cache_length \(4\) \+ 1 new position\(s\) exceeds "
                                  r"the padded cache length 4"):
        step(p, x, keys, values, 4, mem_k, mem_v, lengths, append=False)
    with pytest.raises(err, match="cache_length < 0"):
        step(p, x, keys, values, -1, mem_k, mem_v, lengths, append=False)
    with pytest.raises((err, ValueError), match="memory_keys must have shape|Dimension"):
        step(p, x, keys, values, None, mem_k[:2], mem_v[:2], lengths)
    with pytest.raises(err, match=r"memory_lengths\[1\] = 9 is outside \[0, 5\]"):
        step(p, x, keys, values, None, mem_k, mem_v, tf.constant([5, 9, 1]))
    with pytest.raises(err, match="out_kernel must have shape"):
        step(dict(p, out_kernel=p["out_kernel"][:, :5]), x, keys, values, None, mem_k, mem_v,
             lengths)
    with pytest.raises(err, match="hidden size 32 .* divisible by heads = 3"):
        lightseq_tf.ops.decoder_step(x, keys, values, None, mem_k, mem_v, lengths, p, 3, True)
    with pytest.raises(ValueError, match="cache_length is needed"):
        step(p, x, keys, values, None, mem_k, mem_v, lengths, append=False)
    with pytest.raises(ValueError, match="params lacks q_kernel"):
        step({k: v for k, v in p.items() if k != "q_kernel"}, x, keys, values, None, mem_k, mem_v,
             lengths)
    with pytest.raises((TypeError, err, ValueError)):  # mixed dtypes
        step(p, x, tf.cast(keys, tf.float16), values, None, mem_k, mem_v, lengths)


def test_limits():
    """Keys per query and head size beyond the decoding attention's limits."""
    from lightseq_tf.ops._library import ops
    p = params()
    x, keys, values, mem_k, mem_v, lengths = case(n=1, cached=1)
    big = tf.zeros([B, 8192, HEADS, D])
    with pytest.raises(tf.errors.InvalidArgumentError, match="decoding length 8193 exceeds the "
                                                             "decoding attention's limit of 8192"):
        step(p, x, big, big, None, mem_k, mem_v, lengths)
    wide = 4 * 257
    xw = tf.zeros([1, 1, wide])
    cw = tf.zeros([1, 1, 4, 257])
    pw = {k: tf.zeros([wide if s == H else (3 * wide if s == 3 * H else s)
                       for s in v.shape]) for k, v in params().items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match="head size 257 .* limit 256"):
        ops().lightseq_decoder_step(xw, cw, cw, 1, cw, cw, tf.constant([1]),
                                    *[pw[n] for n in PARAMS], heads=4, pre_ln=True,
                                    activation="relu", append=True)


def test_empty_cases():
    p = params()
    x, keys, values, mem_k, mem_v, lengths = case(n=1, cached=2)
    y, nk, nv = step(p, x[:0], keys[:0], values[:0], None, mem_k[:0], mem_v[:0], lengths[:0])
    assert y.shape == (0, 1, H) and nk.shape == (0, 3, HEADS, D)
    y, nk, _ = step(p, x[:, :0], keys, values, None, mem_k, mem_v, lengths)  # no new position
    assert y.shape == (B, 0, H)
    np.testing.assert_array_equal(nk.numpy(), keys.numpy())
    # A sentence whose memory is all padding attends to nothing (zeros), not NaN.
    y, _, _ = step(p, x, keys, values, None, mem_k, mem_v, tf.constant([0, 2, 4]))
    assert np.all(np.isfinite(y.numpy()))


def test_has_no_gradient():
    p = params()
    x, keys, values, mem_k, mem_v, lengths = case()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y, _, _ = step(p, x, keys, values, None, mem_k, mem_v, lengths)
    with pytest.raises(LookupError, match="inference-only decoding step"):
        tape.gradient(y, x)


def test_keras_layer_uses_the_op_for_decoding(monkeypatch):
    from lightseq_tf import config as cfg
    from lightseq_tf.layers import _transformer
    monkeypatch.setattr(_transformer.TransformerLayerBase, "whole_layer_op", "always")
    c = cfg.transformer_config(max_batch_tokens=256, max_seq_len=16, hidden_size=H,
                               intermediate_size=F, nhead=HEADS, pre_layer_norm=True,
                               attn_prob_dropout_ratio=0.1, activation_dropout_ratio=0.1,
                               hidden_dropout_ratio=0.1, activation_fn="relu")
    layer = lightseq_tf.LSTransformerDecoderLayer(c)
    memory = tf.random.stateless_normal([B, S, H], [3, 4])
    cache = layer.memorize_memory(memory)
    cache.update(tf.nest.map_structure(lambda t: tf.tile(t[None], [B, 1, 1, 1]),
                                       layer.create_decoding_internal_cache()))
    graph = tf.function(lambda t: layer(t, cache=dict(cache))).get_concrete_function(
        tf.TensorSpec([B, 1, H])).graph
    assert "LightseqDecoderStep" in {op.type for op in graph.get_operations()}
    assert layer(tf.zeros([B, 1, H]), cache=dict(cache), training=True).shape == (B, 1, H)
