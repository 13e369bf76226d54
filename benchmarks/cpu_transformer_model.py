"""LSTransformer training step (forward + backward, label-smoothed CE) vs the
same model built from Keras' own layers (Embedding, MultiHeadAttention,
LayerNormalization, Dense) on CPU, float32, dropout 0.1 on both sides:
transformer-base layers (512, 2048, 8 heads), 6 + 6, vocabulary 8000, 32 x 64
= 2048 target tokens (source as long).

    PYTHONPATH=. python benchmarks/cpu_transformer_model.py
"""
import argparse
import math
import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_ops import measure_and_save  # noqa: E402

import lightseq_tf  # noqa: E402

keras = tf.keras
B, L, H, HEADS, F, LAYERS, V, RATE = 32, 64, 512, 8, 2048, 6, 8000, 0.1


class KerasTransformer(keras.Model):
    """The reference: a pre-LN Transformer of Keras layers, tied embeddings."""

    def __init__(self):
        super().__init__()
        self.emb = keras.layers.Embedding(V, H)
        self.drop = keras.layers.Dropout(RATE)

        def block(cross):
            return dict(ln=[keras.layers.LayerNormalization(epsilon=1e-6)
                            for _ in range(3 if cross else 2)],
                        att=keras.layers.MultiHeadAttention(HEADS, H // HEADS, dropout=RATE),
                        cross=keras.layers.MultiHeadAttention(HEADS, H // HEADS, dropout=RATE)
                        if cross else None,
                        ffn1=keras.layers.Dense(F, activation="relu"), ffn2=keras.layers.Dense(H),
                        drop=keras.layers.Dropout(RATE))

        self.enc = [block(False) for _ in range(LAYERS)]
        self.dec = [block(True) for _ in range(LAYERS)]
        self.enc_ln = keras.layers.LayerNormalization(epsilon=1e-6)
        self.dec_ln = keras.layers.LayerNormalization(epsilon=1e-6)
        pos = np.arange(L)[:, None] * np.exp(np.arange(0, H, 2) * (-math.log(10000.0) / H))
        self.signal = tf.constant(np.concatenate([np.sin(pos), np.cos(pos)], -1), tf.float32)

    def embed(self, ids, training):
        return self.drop(self.emb(ids) * math.sqrt(H) + self.signal, training=training)

    def ffn(self, blk, x, training):
        return blk["drop"](blk["ffn2"](blk["drop"](blk["ffn1"](x), training=training)),
                           training=training)

    def call(self, inputs, training=None):
        src, tgt = inputs
        x = self.embed(src, training)
        for blk in self.enc:
            a = blk["ln"][0](x)
            x = x + blk["drop"](blk["att"](a, a, training=training), training=training)
            x = x + self.ffn(blk, blk["ln"][1](x), training)
        memory = self.enc_ln(x)
        y = self.embed(tgt, training)
        for blk in self.dec:
            a = blk["ln"][0](y)
            y = y + blk["drop"](blk["att"](a, a, use_causal_mask=True, training=training),
                                training=training)
            y = y + blk["drop"](blk["cross"](blk["ln"][1](y), memory, training=training),
                                training=training)
            y = y + self.ffn(blk, blk["ln"][2](y), training)
        return tf.matmul(self.dec_ln(y), self.emb.embeddings, transpose_b=True)


def train_step(model, loss_fn, src, tgt_in, tgt_out):
    model((src, tgt_in))  # build

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(tgt_out, model((src, tgt_in), training=True))
        return tape.gradient(loss, model.trainable_variables)

    return lambda: [g.numpy() for g in step() if g is not None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    src, tgt_in, tgt_out = (tf.constant(rng.integers(3, V, (B, L)), tf.int32) for _ in range(3))
    config = lightseq_tf.LSTransformer.get_config(
        "transformer-base", max_batch_tokens=B * L, max_seq_len=L, vocab_size=V, padding_idx=0,
        num_encoder_layer=LAYERS, num_decoder_layer=LAYERS)
    ours = lightseq_tf.LSTransformer(config)
    native = KerasTransformer()
    native_ce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)

    def native_loss(targets, logits):
        return native_ce(tf.one_hot(targets, V), logits)

    measure_and_save([("transformer_base_6_6_train_step", [B, L, H, LAYERS, V],
                       train_step(ours, ours.loss_function, src, tgt_in, tgt_out),
                       train_step(native, native_loss, src, tgt_in, tgt_out))],
                     "cpu_transformer_model",
                     "LSTransformer vs a Keras-layer Transformer, CPU training step",
                     args.out, iters=5)


if __name__ == "__main__":
    main()
