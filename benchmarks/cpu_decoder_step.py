"""One incremental decoder-layer step on CPU (inference, float32):
transformer-base layer (512, 2048, 8 heads), batch 32 x beam 4 = 128 rows,
source 64, one new position after t-1 cached ones (NeurST's dynamic cache,
appended). Three ways, timed in alternation: the LightseqDecoderStep op
(its CPU twin; `whole_layer_op="always"`), the Keras layer's composed path
(fused ops around TF's MatMul; what `auto` runs on CPU), and the same step
in native TF ops (NeurST's math: matmul, concat, einsum attention, softmax).

    PYTHONPATH=. python benchmarks/cpu_decoder_step.py
"""
import argparse
import os
import sys

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_ops import median_ms  # noqa: E402
from report import chart, save, table  # noqa: E402

import lightseq_tf  # noqa: E402
from lightseq_tf import config as cfg  # noqa: E402

ROWS, SRC, H, HEADS, F = 128, 64, 512, 8, 2048
D = H // HEADS


def native_step(p, x, keys, values, mem_k, mem_v):
    """NeurST's pre-LN decoder layer step in plain TF ops."""
    def ln(t, i):
        mean, var = tf.nn.moments(t, [-1], keepdims=True)
        return (t - mean) * tf.math.rsqrt(var + 1e-6) * p["ln%d_gamma" % i] + p["ln%d_beta" % i]

    def attend(q, k, v):
        s = tf.einsum("bqhd,bkhd->bhqk", q, k) * D ** -0.5
        return tf.reshape(tf.einsum("bhqk,bkhd->bqhd", tf.nn.softmax(s), v), [ROWS, 1, H])

    heads = lambda t: tf.reshape(t, [ROWS, -1, HEADS, D])  # noqa: E731
    q, k, v = tf.split(ln(x, 1) @ p["qkv_kernel"] + p["qkv_bias"], 3, -1)
    keys, values = tf.concat([keys, heads(k)], 1), tf.concat([values, heads(v)], 1)
    x = x + attend(heads(q), keys, values) @ p["out_kernel"] + p["out_bias"]
    q = heads(ln(x, 2) @ p["q_kernel"] + p["q_bias"])
    x = x + attend(q, mem_k, mem_v) @ p["cross_out_kernel"] + p["cross_out_bias"]
    f = tf.nn.relu(ln(x, 3) @ p["ffn1_kernel"] + p["ffn1_bias"])
    return x + f @ p["ffn2_kernel"] + p["ffn2_bias"], keys, values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    c = cfg.transformer_config(max_batch_tokens=ROWS * 256, max_seq_len=256, hidden_size=H,
                               intermediate_size=F, nhead=HEADS, pre_layer_norm=True,
                               attn_prob_dropout_ratio=0.1, activation_dropout_ratio=0.1,
                               hidden_dropout_ratio=0.1, activation_fn="relu")
    layer = lightseq_tf.LSTransformerDecoderLayer(c)
    memory = tf.random.stateless_normal([ROWS, SRC, H], [1, 2])
    layer(tf.zeros([ROWS, 1, H]), memory)
    mem = layer.memorize_memory(memory)["memory"]
    p = layer._op_params()

    def layer_step(policy):
        @tf.function
        def run(x, keys, values):
            layer.whole_layer_op = policy
            cache = {"memory": mem, "self_attention": {"keys": keys, "values": values}}
            return layer(x, cache=cache), cache["self_attention"]["keys"]
        return run

    ours, composed = layer_step("always"), layer_step("never")
    native = tf.function(native_step)
    rows = []
    for t in (1, 32, 64):
        x = tf.random.stateless_normal([ROWS, 1, H], [3, t])
        keys = tf.random.stateless_normal([ROWS, t - 1, HEADS, D], [4, t])
        values = tf.random.stateless_normal([ROWS, t - 1, HEADS, D], [5, t])
        a, b, n = median_ms(lambda: ours(x, keys, values), lambda: composed(x, keys, values),
                            lambda: native(p, x, keys, values, mem["keys"], mem["values"]),
                            iters=30, warmup=3)
        rows.append({"name": "decoder_step_base_t%d" % t, "dtype": "float32",
                     "shape": [ROWS, t, SRC, H, HEADS, F], "ours_ms": a, "composed_ms": b,
                     "native_tf_ms": n, "speedup_vs_native": n / a,
                     "composed_speedup_vs_native": n / b,
                     "device": "CPU x%d threads, TF %s" % (os.cpu_count(), tf.__version__)})
    cols = ["name", "ours_ms", "composed_ms", "native_tf_ms", "speedup_vs_native",
            "composed_speedup_vs_native"]
    print(table(rows, cols))
    save(rows, "cpu_decoder_step", args.out)
    try:
        chart(rows, "cpu_decoder_step", args.out, "decoder layer step on CPU (128 rows, base)")
    except ImportError:
        print("(matplotlib not installed: no PNG)")


if __name__ == "__main__":
    main()
