"""Every op's CPU twin vs the same math in native TF ops, forward + backward.

    PYTHONPATH=. python benchmarks/cpu_ops.py --out benchmarks/results
Each side is one tf.function per step (forward and the gradients of every
input), on the same inputs and TF's same intra-op thread pool; median of
repeated steps. Results: cpu_ops.json / .png.
"""
import argparse
import os
import time

import numpy as np
import tensorflow as tf

import lightseq_tf
from report import chart, save, table

RATE, SEED = 0.1, 1234


def median_ms(*fns, iters=20, warmup=3):
    """Median ms of each fn, the fns timed in turn within every iteration, so
    that a slow phase of a shared machine hits all of them alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    ts = [[] for _ in fns]
    for _ in range(iters):
        for fn, t in zip(fns, ts):
            t0 = time.perf_counter()
            fn()
            t.append((time.perf_counter() - t0) * 1e3)
    out = [float(np.median(t)) for t in ts]
    return out[0] if len(fns) == 1 else out


def native_dropout(x):
    return tf.nn.experimental.stateless_dropout(x, RATE, seed=[SEED, 0])


def step(f, inputs, dy):
    """tf.function: f(*inputs) and d(f . dy)/d(inputs)."""
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y = f(*inputs)
        grads = tape.gradient(y, inputs, output_gradients=dy)
        # tf.gather's table gradient is IndexedSlices: keep it sparse (its cheapest form).
        return [y] + [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
    return lambda: [t.numpy() for t in run()]


def cases():
    r = lambda *s: tf.random.normal(s)  # noqa: E731
    t, h = 4096, 1024
    x, res, dy, b, g = r(t, h), r(t, h), r(t, h), r(h), r(h) + 2
    ce_logits = r(512, 32000)
    ce_targets = tf.random.uniform([512], 0, 32000, dtype=tf.int32)
    soft = tf.one_hot(ce_targets, 32000, on_value=0.9, off_value=0.1 / 31999)
    ce_dy = tf.ones([512])
    ids = tf.random.uniform([64, 64], 0, 32000, dtype=tf.int32)
    table, emb_dy = r(32000, 512), r(64, 64, 512)
    signal = lightseq_tf.embedding(tf.zeros([1, 64], tf.int32), tf.zeros([1, 512]))[0]
    return [
        ("embedding", [64, 64, 512, 32000],
         step(lambda t: lightseq_tf.embedding(ids, t, rate=RATE, seed=SEED), [table], emb_dy),
         step(lambda t: native_dropout(tf.gather(t, ids) * 512 ** 0.5 + signal), [table], emb_dy)),
        # Keras 3's LayerNormalization on the TF backend is moments + batch_normalization.
        ("layer_norm", [t, h], step(lambda x, g, b: lightseq_tf.layer_norm(x, g, b, 1e-6), [x, g, b], dy),
         step(lambda x, g, b: tf.nn.batch_normalization(
             x, *tf.nn.moments(x, [-1], keepdims=True), b, g, 1e-6), [x, g, b], dy)),
        ("dropout", [t, h], step(lambda x: lightseq_tf.dropout(x, RATE, SEED), [x], dy),
         step(native_dropout, [x], dy)),
        ("bias_dropout_residual", [t, h],
         step(lambda x, b, r: lightseq_tf.bias_dropout_residual(x, b, r, RATE, SEED), [x, b, res], dy),
         step(lambda x, b, r: r + native_dropout(x + b), [x, b, res], dy)),
        ("bias_relu_dropout", [t, h],
         step(lambda x, b: lightseq_tf.bias_act_dropout(x, b, RATE, SEED, "relu"), [x, b], dy),
         step(lambda x, b: native_dropout(tf.nn.relu(x + b)), [x, b], dy)),
        ("bias_gelu_dropout", [t, h],
         step(lambda x, b: lightseq_tf.bias_act_dropout(x, b, RATE, SEED, "gelu"), [x, b], dy),
         step(lambda x, b: native_dropout(tf.nn.gelu(x + b, approximate=False)), [x, b], dy)),
        ("cross_entropy", [512, 32000],
         step(lambda z: lightseq_tf.cross_entropy(z, ce_targets, 0.1)[0], [ce_logits], ce_dy),
         step(lambda z: tf.nn.softmax_cross_entropy_with_logits(labels=soft, logits=z),
              [ce_logits], ce_dy)),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = ap.parse_args()
    measure_and_save(((n, s, o, t) for n, s, o, t in cases() if not args.only or n in args.only),
                     "cpu_ops", "fwd+bwd on CPU: ours vs native TF ops (float32)", args.out)


def measure_and_save(cases, name, title, out, iters=20):
    """Median fwd+bwd time of ours and native per (case, shape, ours, native);
    prints a table, saves <name>.json and a chart."""
    rows = []
    for case, shape, ours, native in cases:
        o, n = median_ms(ours, native, iters=iters)
        rows.append({"name": case + "_fwd_bwd", "dtype": "float32", "shape": shape, "ours_ms": o,
                     "native_tf_ms": n, "speedup_vs_native": n / o,
                     "device": "CPU x%d threads, TF %s" % (os.cpu_count(), tf.__version__)})
        print(table(rows[-1:], ["name", "shape", "ours_ms", "native_tf_ms", "speedup_vs_native"]),
              flush=True)
    print(table(rows, ["name", "shape", "ours_ms", "native_tf_ms", "speedup_vs_native"]))
    save(rows, name, out)
    try:
        chart(rows, name, out, title)
    except ImportError:
        print("(matplotlib not installed: no PNG)")


if __name__ == "__main__":
    main()
