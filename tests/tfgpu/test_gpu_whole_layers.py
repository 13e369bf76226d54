"""The whole-layer ops (encoder / decoder layer, forward and backward, on
TensorFlow's stream and BLAS) and the incremental decoding step placed on the
device under test, against their CPU twins on the same inputs and seeds, with
dropout on: the same seed must give the same function on both (a mask that
differed anywhere would move the outputs far past these bounds: another seed
moves them by > 1e-2, tests/cpu/test_*_layer_op.py). The `saved` buffer is
checked both ways: CPU-made bytes consumed by the device's backward and the
device's by the CPU's. Bounds are tests/cpu's."""
import target  # noqa: F401  (first: skips this module where TensorFlow lists no GPU)

import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
import test_decoder_step_op as step_op
import test_encoder_layer as enc_t
import test_encoder_layer_op as enc_op
from lightseq_tf.ops.decoder_layer import PARAMS as DEC_PARAMS
from lightseq_tf.ops.encoder_layer import PARAMS as ENC_PARAMS
from lightseq_tf.ops._library import ops
from optimizers_check import graph_op_types
from target import (CPU, DEVICE, ON_GPU, assert_placed, both, f32, on_cpu, on_target)
from tolerances import REL, rel_err

HEADS = enc_op.HEADS
RATES = (0.1, 0.2, 0.1)  # attention probabilities, FFN activation, hidden
SEED = 987654321
# 16-bit layers against each other and against float32: tests/cpu/test_encoder_layer.py's
# mixed-precision bounds (every activation stored in 16 bits across ~20 dependent steps).
HALF_TOL = {tf.float16: enc_t.TOL["mixed_float16"], tf.bfloat16: enc_t.TOL["mixed_bfloat16"]}
# float32: GEMM summation order only (cuBLAS vs Eigen), tests/cpu's bound.
FP32_TOL = enc_op.FP32_TOL


def params_for(names, shapes, dtype, seed=5):
    return {n: tf.cast(tf.random.stateless_normal(s, [seed, i]) * 0.1
                       + (1.0 if "gamma" in n else 0.0), dtype)
            for i, (n, s) in enumerate(zip(names, shapes))}


def enc_shapes(h, f):
    return [[h], [h], [h, 3 * h], [3 * h], [h, h], [h], [h], [h], [h, f], [f], [f, h], [h]]


def dec_shapes(h, f):
    return [[h], [h], [h, 3 * h], [3 * h], [h, h], [h], [h], [h], [h, h], [h], [h, 2 * h],
            [2 * h], [h, h], [h], [h], [h], [h, f], [f], [f, h], [h]]


def encoder_fwd_bwd(x, lengths, p, dy, pre_ln, act, rates=RATES, seed=SEED):
    names = list(ENC_PARAMS)
    with tf.GradientTape() as tape:
        tape.watch([x] + [p[n] for n in names])
        y = lightseq_tf.ops.encoder_layer(x, lengths, p, HEADS, pre_ln, act, *rates, seed)
    return [y] + tape.gradient(y, [x] + [p[n] for n in names], output_gradients=dy)


def decoder_fwd_bwd(x, memory, lengths, p, dy, pre_ln, act, rates=RATES, seed=SEED):
    names = list(DEC_PARAMS)
    with tf.GradientTape() as tape:
        tape.watch([x, memory] + [p[n] for n in names])
        y = lightseq_tf.ops.decoder_layer(x, memory, lengths, p, HEADS, pre_ln, act, *rates, seed)
    return [y] + tape.gradient(y, [x, memory] + [p[n] for n in names], output_gradients=dy)


def compare(got, cpu, names, tol, ref=None):
    assert_placed(got)
    for i, (name, g, c) in enumerate(zip(names, got, cpu)):
        assert g is not None and g.dtype == c.dtype, name
        assert rel_err(g, f32(c).astype(np.float64)) < tol, (name, rel_err(g, f32(c)))
        if ref is not None:
            assert rel_err(g, f32(ref[i]).astype(np.float64)) < tol, (name, "vs float32")


# (batch, length, hidden, ffn): small odd sizes, and transformer-base widths
# (the GEMM shapes, workspace and attention tiling a real model gives).
SIZES = [(3, 13, 32, 48), (4, 37, 512, 2048)]


@pytest.mark.parametrize("size", SIZES, ids=["small", "base"])
@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_tanh"])
def test_encoder_layer_float32(size, pre_ln, act):
    b, length, h, f = size
    x = tf.random.stateless_normal([b, length, h], [1, 1])
    lengths = tf.constant(([length, 5, 1] + [length] * b)[:b])
    dy = tf.random.stateless_normal([b, length, h], [2, 2])
    p = params_for(ENC_PARAMS, enc_shapes(h, f), tf.float32)
    got, cpu = both(encoder_fwd_bwd, x, lengths, p, dy, pre_ln, act)
    compare(got, cpu, ["y", "dx"] + list(ENC_PARAMS), FP32_TOL)
    other, _ = both(encoder_fwd_bwd, x, lengths, p, dy, pre_ln, act, seed=SEED + 4)
    assert rel_err(other[0], got[0].numpy()) > 1e-2  # the masks are in use


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("size", SIZES, ids=["small", "base"])
def test_encoder_layer_16_bit(dtype, size):
    """GELU (no kink: a ReLU input that rounds across 0 moves its gradient
    by O(|dy|), tests/cpu/test_decoder_layer.py), against the CPU twin in the
    same type and against the float32 op."""
    b, length, h, f = size
    x = tf.random.stateless_normal([b, length, h], [3, 3])
    lengths = tf.constant(([length, 4] + [length] * b)[:b])
    dy = tf.random.stateless_normal([b, length, h], [4, 4])
    p32 = params_for(ENC_PARAMS, enc_shapes(h, f), tf.float32)
    p16 = {n: tf.cast(v, dtype) for n, v in p32.items()}
    args16 = (tf.cast(x, dtype), lengths, p16, tf.cast(dy, dtype), True, "gelu")
    got, cpu = both(encoder_fwd_bwd, *args16)
    with on_cpu():
        ref = encoder_fwd_bwd(tf.cast(tf.cast(x, dtype), tf.float32), lengths,
                              {n: tf.cast(v, tf.float32) for n, v in p16.items()},
                              tf.cast(tf.cast(dy, dtype), tf.float32), True, "gelu")
    compare(got, cpu, ["y", "dx"] + list(ENC_PARAMS), HALF_TOL[dtype], ref)


@pytest.mark.parametrize("size", SIZES, ids=["small", "base"])
@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_decoder_layer_float32(size, pre_ln, act):
    b, length, h, f = size
    x = tf.random.stateless_normal([b, length, h], [1, 1])
    memory = tf.random.stateless_normal([b, length - 5, h], [1, 2])
    lengths = tf.constant(([length - 5, 2] + [length - 5] * b)[:b])
    dy = tf.random.stateless_normal([b, length, h], [2, 2])
    p = params_for(DEC_PARAMS, dec_shapes(h, f), tf.float32)
    got, cpu = both(decoder_fwd_bwd, x, memory, lengths, p, dy, pre_ln, act)
    compare(got, cpu, ["y", "dx", "dmemory"] + list(DEC_PARAMS), FP32_TOL)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=["fp16", "bf16"])
def test_decoder_layer_16_bit(dtype):
    b, length, h, f = SIZES[1]
    x = tf.random.stateless_normal([b, length, h], [3, 3])
    memory = tf.random.stateless_normal([b, 21, h], [3, 4])
    lengths = tf.constant([21, 3, 20, 9])
    dy = tf.random.stateless_normal([b, length, h], [4, 4])
    p32 = params_for(DEC_PARAMS, dec_shapes(h, f), tf.float32)
    cast = lambda t: tf.cast(t, dtype)  # noqa: E731
    args16 = (cast(x), cast(memory), lengths, {n: cast(v) for n, v in p32.items()}, cast(dy), True,
              "gelu")
    got, cpu = both(decoder_fwd_bwd, *args16)
    up = lambda t: tf.cast(t, tf.float32)  # noqa: E731
    with on_cpu():
        ref = decoder_fwd_bwd(up(args16[0]), up(args16[1]), lengths,
                              {n: up(v) for n, v in args16[3].items()}, up(args16[4]), True,
                              "gelu")
    compare(got, cpu, ["y", "dx", "dmemory"] + list(DEC_PARAMS), HALF_TOL[dtype], ref)


def _grads_with(kind, saved, inputs, params, dy, device):
    """The gradient op alone, on `device`, fed a given `saved` buffer."""
    kw = dict(heads=HEADS, pre_ln=True, activation="relu", attn_dropout=RATES[0],
              act_dropout=RATES[1], hidden_dropout=RATES[2], epsilon=1e-6)
    seed = tf.constant(SEED, tf.int64)
    with tf.device(device):
        if kind == "encoder":
            x, lengths = inputs
            return ops().lightseq_encoder_layer_grad(dy, x, lengths, seed, *params, saved, **kw)
        x, memory, lengths = inputs
        return ops().lightseq_decoder_layer_grad(dy, x, memory, lengths, seed, *params, saved,
                                                 **kw)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_saved_buffer_crosses_devices_both_ways(kind):
    """README: the forward's `saved` is the same bytes on CPU and GPU. The
    device's backward fed the CPU's buffer equals it fed its own, and the
    CPU's backward fed the device's buffer equals it fed its own (float32
    rounding: the buffers hold values computed on each side)."""
    b, length, h, f = 3, 11, 64, 96
    x = tf.random.stateless_normal([b, length, h], [7, 1])
    dy = tf.random.stateless_normal([b, length, h], [7, 2])
    kw = dict(heads=HEADS, pre_ln=True, activation="relu", attn_dropout=RATES[0],
              act_dropout=RATES[1], hidden_dropout=RATES[2], epsilon=1e-6)
    seed = tf.constant(SEED, tf.int64)
    if kind == "encoder":
        lengths = tf.constant([11, 4, 7])
        params = list(params_for(ENC_PARAMS, enc_shapes(h, f), tf.float32).values())
        inputs = (x, lengths)

        def forward():
            return ops().lightseq_encoder_layer(x, lengths, seed, *params, **kw)
    else:
        memory = tf.random.stateless_normal([b, 6, h], [7, 3])
        lengths = tf.constant([6, 2, 5])
        params = list(params_for(DEC_PARAMS, dec_shapes(h, f), tf.float32).values())
        inputs = (x, memory, lengths)

        def forward():
            return ops().lightseq_decoder_layer(x, memory, lengths, seed, *params, **kw)

    (y_t, saved_t), (y_c, saved_c) = both(forward)
    assert_placed(y_t, saved_t)
    assert saved_t.dtype == saved_c.dtype == tf.uint8
    assert saved_t.shape == saved_c.shape  # the same layout, byte for byte in size
    assert rel_err(y_t, y_c.numpy()) < FP32_TOL
    own_t = _grads_with(kind, saved_t, inputs, params, dy, DEVICE)
    cross_t = _grads_with(kind, tf.identity(saved_c), inputs, params, dy, DEVICE)
    own_c = _grads_with(kind, saved_c, inputs, params, dy, CPU)
    cross_c = _grads_with(kind, saved_t, inputs, params, dy, CPU)
    assert_placed(own_t, cross_t)
    for i, (a, b_, c, d) in enumerate(zip(own_t, cross_t, own_c, cross_c)):
        assert rel_err(b_, a.numpy()) < FP32_TOL, ("device backward, CPU's saved", i)
        assert rel_err(d, c.numpy()) < FP32_TOL, ("CPU backward, device's saved", i)
        assert rel_err(a, c.numpy()) < FP32_TOL, ("device vs CPU", i)


def test_tf32_setting_reaches_the_layer_gemms():
    """Our layers' GEMMs go through TF's BLAS with TF's TF32 setting (on by
    default on Ampere and later): with TF32 on, a float32 layer moves away
    from the TF32-off result exactly when TF's own MatMul does."""
    if not ON_GPU:
        pytest.skip("TF32 is a GPU setting")
    b, length, h, f = SIZES[1]
    x = tf.random.stateless_normal([b, length, h], [9, 1])
    p = params_for(ENC_PARAMS, enc_shapes(h, f), tf.float32)
    a = tf.random.stateless_normal([256, 512], [9, 2])
    w = tf.random.stateless_normal([512, 256], [9, 3])

    def run():
        with on_target():
            return (lightseq_tf.ops.encoder_layer(x, None, p, HEADS, True).numpy(),
                    tf.matmul(a, w).numpy())

    off = run()
    tf.config.experimental.enable_tensor_float_32_execution(True)
    try:
        on = run()
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(False)
    moved_layer, moved_matmul = rel_err(on[0], off[0]), rel_err(on[1], off[1])
    print("TF32 on vs off: layer %.2e, tf.matmul %.2e" % (moved_layer, moved_matmul))
    assert (moved_layer > 1e-6) == (moved_matmul > 1e-6), (moved_layer, moved_matmul)
    assert moved_layer < 1e-2  # TF32's 10-bit mantissa, not garbage


# -- the incremental decoding step ------------------------------------------

@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("n", [1, 3])
def test_decoder_step_append(pre_ln, act, n):
    p = step_op.params()
    x, keys, values, mem_k, mem_v, lengths = step_op.case(n=n, cached=4)
    got, cpu = both(step_op.step, p, x, keys, values, None, mem_k, mem_v, lengths, pre_ln, act)
    assert_placed(got)
    pad = tf.zeros([step_op.B, n, step_op.HEADS, step_op.D])
    with tf.device(CPU):
        ref = step_op.np_step(p, x, tf.concat([keys, pad], 1), tf.concat([values, pad], 1), 4,
                              mem_k, mem_v, lengths, pre_ln, act)
    for name, g, c, r in zip(("y", "keys", "values"), got, cpu, ref):
        assert rel_err(g, r) < REL[tf.float32] and rel_err(g, c.numpy()) < REL[tf.float32], name
    np.testing.assert_array_equal(got[1][:, :4].numpy(), keys.numpy())  # old rows as they were


@pytest.mark.parametrize("t", [0, 3, 6])
def test_decoder_step_static_cache(t):
    p = step_op.params()
    x, keys, values, mem_k, mem_v, lengths = step_op.case(n=1, cached=7)
    got, cpu = both(step_op.step, p, x, keys, values, t, mem_k, mem_v, lengths, append=False)
    assert_placed(got)
    with tf.device(CPU):
        ref = step_op.np_step(p, x, keys, values, t, mem_k, mem_v, lengths, True, "relu")
    for name, g, c, r in zip(("y", "keys", "values"), got, cpu, ref):
        assert rel_err(g, r) < REL[tf.float32] and rel_err(g, c.numpy()) < REL[tf.float32], name
    untouched = [i for i in range(7) if i != t]
    np.testing.assert_array_equal(tf.gather(got[1], untouched, axis=1).numpy(),
                                  tf.gather(keys, untouched, axis=1).numpy())


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=["fp16", "bf16"])
def test_decoder_step_16_bit(dtype):
    """tests/cpu's bounds against the float32 step (8 u on y, 2 u on the cache)."""
    p = step_op.params(3, dtype)
    x, keys, values, mem_k, mem_v, lengths = step_op.case(n=2, cached=3, dtype=dtype)
    got, cpu = both(step_op.step, p, x, keys, values, None, mem_k, mem_v, lengths)
    p32 = {k: tf.cast(v, tf.float32) for k, v in p.items()}
    c32 = [tf.cast(t, tf.float32) for t in (x, keys, values, mem_k, mem_v)]
    with on_cpu():
        y32, nk32, _ = step_op.step(p32, c32[0], c32[1], c32[2], None, c32[3], c32[4], lengths)
    assert_placed(got)
    assert rel_err(got[0], y32.numpy()) < 8 * REL[dtype]
    assert rel_err(got[1], nk32.numpy()) < 2 * REL[dtype]
    assert rel_err(got[0], f32(cpu[0]).astype(np.float64)) < 8 * REL[dtype]


@pytest.mark.parametrize("append", [True, False], ids=["append", "static"])
def test_decoder_step_reproduces_the_training_forward(append):
    """Decoding position by position on the device gives the device's
    whole-layer training forward (dropout off) at every position."""
    p = step_op.params(2)
    B, S, H, L = step_op.B, step_op.S, step_op.H, 6
    x = tf.random.stateless_normal([B, L, H], [5, 6])
    memory = tf.random.stateless_normal([B, S, H], [7, 8])
    lengths = tf.constant([S, 1, 3])
    with on_target():
        full = lightseq_tf.ops.decoder_layer(x, memory, lengths, p, step_op.HEADS, True)
        kv = tf.reshape(memory @ p["kv_kernel"] + p["kv_bias"], [B, S, 2, step_op.HEADS, step_op.D])
        keys = values = tf.zeros([B, 0 if append else L, step_op.HEADS, step_op.D])
        outs = []
        for t in range(L):
            y, keys, values = step_op.step(p, x[:, t:t + 1], keys, values, None if append else t,
                                           kv[:, :, 0], kv[:, :, 1], lengths, append=append)
            outs.append(y)
    assert_placed(full, keys)
    assert rel_err(tf.concat(outs, 1), full.numpy()) < REL[tf.float32]


def test_decoder_step_static_cache_in_a_while_loop():
    """NeurST's static mode under tf.function on the device: the cache is a
    loop variable written at the loop counter, in place when TF lets the op
    forward its input buffer."""
    p = step_op.params(4)
    B, S, H, L = step_op.B, step_op.S, step_op.H, 5
    x = tf.random.stateless_normal([B, L, H], [1, 1])
    memory = tf.random.stateless_normal([B, S, H], [2, 2])
    lengths = tf.constant([S, 2, 4])

    def decode():
        kv = tf.reshape(memory @ p["kv_kernel"] + p["kv_bias"],
                        [B, S, 2, step_op.HEADS, step_op.D])

        def body(t, keys, values, ys):
            y, keys, values = step_op.step(p, x[:, t:t + 1], keys, values, t, kv[:, :, 0],
                                           kv[:, :, 1], lengths, append=False)
            return t + 1, keys, values, ys.write(t, y[:, 0])
        zeros = tf.zeros([B, L, step_op.HEADS, step_op.D])
        _, keys, values, ys = tf.while_loop(lambda t, *_: t < L, body,
                                            (0, zeros, zeros, tf.TensorArray(tf.float32, L)))
        return tf.transpose(ys.stack(), [1, 0, 2]), keys, values

    got, cpu = both(lambda: tf.function(decode)())
    assert_placed(got)
    with on_target():
        full = lightseq_tf.ops.decoder_layer(x, memory, lengths, p, step_op.HEADS, True)
    assert rel_err(got[0], full.numpy()) < REL[tf.float32]
    for g, c in zip(got, cpu):
        assert rel_err(g, c.numpy()) < REL[tf.float32]
    assert "LightseqDecoderStep" in graph_op_types(tf.function(decode))  # in the loop body


def test_decoder_step_has_no_gradient_on_the_device():
    p = step_op.params()
    x, keys, values, mem_k, mem_v, lengths = step_op.case()
    with on_target():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, _, _ = step_op.step(p, x, keys, values, None, mem_k, mem_v, lengths)
        with pytest.raises(LookupError, match="inference-only decoding step"):
            tape.gradient(y, x)


def test_keras_layers_choose_the_whole_layer_ops_on_a_gpu(monkeypatch):
    """whole_layer_op="auto" (the default) picks the whole-layer and
    decoding-step ops where the layer is placed on a GPU, the composition on
    the CPU."""
    from lightseq_tf.layers import _transformer
    monkeypatch.setattr(_transformer.TransformerLayerBase, "whole_layer_op", "auto")
    c = enc_t.config(True, "relu")
    enc = lightseq_tf.LSTransformerEncoderLayer(c)
    dec = lightseq_tf.LSTransformerDecoderLayer(c)
    x = tf.random.stateless_normal([2, 5, 32], [1, 1])
    with tf.device(DEVICE):
        enc(x)
        dec(x, memory=x)
        ops_in = lambda f: {o.type for o in tf.function(f).get_concrete_function().graph  # noqa
                            .get_operations()}
        enc_ops = ops_in(lambda: enc(x, training=True))
        dec_ops = ops_in(lambda: dec(x, memory=x, training=True))
    assert ("LightseqEncoderLayer" in enc_ops) == ON_GPU, enc_ops
    assert ("LightseqDecoderLayer" in dec_ops) == ON_GPU, dec_ops
    assert ("LightseqAttnSoftmax" in enc_ops) != ON_GPU
