"""Keras layers on CPU vs NeurST's layer math in native TF ops (the
references of tests/cpu), fwd + bwd (input and every variable), fp32,
dropout rates 0.1 for ours and none for the native side (its best case).

    PYTHONPATH=. python benchmarks/cpu_layers.py --out benchmarks/results
"""
import argparse
import os
import sys

import tensorflow as tf

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", "tests", d) for d in ("cpu", "common")]
import lightseq_tf  # noqa: E402
import test_decoder_layer as dec  # noqa: E402
import test_encoder_layer as enc  # noqa: E402
from cpu_ops import measure_and_save  # noqa: E402
from lightseq_tf import config as cfg  # noqa: E402

B, L, MEM = 32, 64, 64


def grads_fn(forward, sources, dy):
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch([s for s in sources if isinstance(s, tf.Tensor)])  # variables are watched already
            y = forward()
        return tape.gradient(y, sources, output_gradients=dy)
    return lambda: [g.numpy() for g in run()]


def cases():
    c = cfg.transformer_config("transformer-base", max_batch_tokens=4096, max_seq_len=L)
    x = tf.random.normal([B, L, 512])
    memory = tf.random.normal([B, MEM, 512])
    lengths = tf.fill([B], L)
    dy = tf.random.normal([B, L, 512])
    e = lightseq_tf.LSTransformerEncoderLayer(c)
    e(x, lengths=lengths)
    we = enc.weights(e)
    ve = [we[n] for n in sorted(we)]
    d = lightseq_tf.LSTransformerDecoderLayer(c)
    d(x, memory, memory_lengths=lengths)
    wd = enc.weights(d)
    vd = [wd[n] for n in sorted(wd)]
    return [
        ("encoder_layer_base", grads_fn(lambda: e(x, lengths=lengths, training=True), [x] + ve, dy),
         grads_fn(lambda: enc.neurst_reference(x, lengths, we, c, 1e-6), [x] + ve, dy)),
        ("decoder_layer_base",
         grads_fn(lambda: d(x, memory, memory_lengths=lengths, training=True), [x, memory] + vd, dy),
         grads_fn(lambda: dec.neurst_reference(x, memory, lengths, wd, c), [x, memory] + vd, dy)),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    measure_and_save(((n, [B, L, 512], o, t) for n, o, t in cases()), "cpu_layers",
                     "layers fwd+bwd on CPU: ours vs NeurST math in native TF", args.out, iters=10)


if __name__ == "__main__":
    main()
