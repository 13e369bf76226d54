"""LayerNorm fwd+bwd on CPU: ours (CPU twin) vs native Keras LayerNormalization.

    PYTHONPATH=. python benchmarks/cpu_layer_norm.py --out benchmarks/results
Both run inside one tf.function per step (forward + gradients of x, gamma,
beta); median of repeated steps, same inputs, same thread pool.
"""
import argparse
import os
import time

import numpy as np
import tensorflow as tf

import lightseq_tf
from report import chart, save, table

CASES = [(4096, 512), (4096, 1024), (1024, 4096), (2048, 1023)]


def median_ms(fn, iters=30, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


def run_case(tokens, h):
    x = tf.random.normal([tokens, h])
    dy = tf.random.normal([tokens, h])
    g = tf.Variable(tf.random.uniform([h]) + 0.5)
    b = tf.Variable(tf.random.normal([h]))
    native = tf.keras.layers.LayerNormalization(epsilon=1e-6)
    native.build((None, h))

    @tf.function
    def ours_step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = lightseq_tf.layer_norm(x, g, b, 1e-6)
        return tape.gradient(y, [x, g, b], output_gradients=dy)

    @tf.function
    def native_step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = native(x)
        return tape.gradient(y, [x, native.gamma, native.beta], output_gradients=dy)

    run = lambda f: (lambda: [t.numpy() for t in f()])  # noqa: E731  (sync)
    ours_ms = median_ms(run(ours_step))
    native_ms = median_ms(run(native_step))
    return {"name": "layer_norm_fwd_bwd", "dtype": "float32", "shape": [tokens, h],
            "ours_ms": ours_ms, "native_tf_ms": native_ms, "speedup_vs_native": native_ms / ours_ms,
            "device": "CPU x%d threads, TF %s" % (os.cpu_count(), tf.__version__)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    rows = [run_case(t, h) for t, h in CASES]
    print(table(rows, ["dtype", "shape", "ours_ms", "native_tf_ms", "speedup_vs_native"]))
    save(rows, "cpu_layer_norm", args.out)
    try:
        chart(rows, "cpu_layer_norm", args.out, "LayerNorm fwd+bwd on CPU: ours vs Keras (native TF)")
    except ImportError:
        print("(matplotlib not installed: no PNG)")


if __name__ == "__main__":
    main()
