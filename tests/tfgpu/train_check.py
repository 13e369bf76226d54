"""A few training steps of an LSTransformer (mixed_float16, fused CE, LSAdam
under Keras' loss scaling) on the device under test, in a process of its
own for what is process-wide in TensorFlow: op determinism (cannot be turned
off again) and XLA auto-clustering (TF_XLA_FLAGS, read at start-up). Prints
one JSON line: the losses and a digest of the final weights.

    python train_check.py [--determinism] [--dropout 0.1] [--steps 5] [--runs 2]
"""
import argparse
import hashlib
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.join(here, "..", "common"), os.path.join(here, "..", "cpu")]


def train_once(steps, dropout):
    import tensorflow as tf

    import lightseq_tf
    import test_transformer_model as tm
    from target import on_target

    tf.keras.utils.set_random_seed(1234)
    with on_target(strict=False):
        model = lightseq_tf.LSTransformer(
            tm.model_config(hidden_dropout_ratio=dropout, attn_prob_dropout_ratio=dropout,
                            activation_dropout_ratio=dropout, label_smoothing=0.1),
            dtype="mixed_float16")
        src = tm.source_batch(3, n=16)
        tgt_in = tf.concat([tf.fill([16, 1], tm.BOS), src], 1)
        tgt_out = tf.concat([src, tf.zeros([16, 1], tf.int32)], 1)
        model((src, tgt_in))
        opt = tf.keras.optimizers.LossScaleOptimizer(lightseq_tf.LSAdam(1e-3))
        opt.build(model.trainable_variables)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = model.loss_function(tgt_out, model((src, tgt_in), training=True))
                scaled = opt.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        losses = [float(step()) for _ in range(steps)]
    digest = hashlib.sha256()
    for w in model.trainable_variables:
        digest.update(w.numpy().tobytes())
    return {"losses": losses, "weights": digest.hexdigest()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--determinism", action="store_true")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    import tensorflow as tf
    if a.determinism:
        tf.config.experimental.enable_op_determinism()
    from target import DEVICE
    runs = [train_once(a.steps, a.dropout) for _ in range(a.runs)]
    print(json.dumps({"device": DEVICE, "runs": runs,
                      "xla_flags": os.environ.get("TF_XLA_FLAGS", "")}))


if __name__ == "__main__":
    main()
