"""mixed_float16 training with Keras' dynamic loss scaling around LSAdam: a
step whose gradients overflow float16 is skipped (weights untouched, no NaN
anywhere), the loss scale halves, and training carries on."""
import numpy as np
import tensorflow as tf

import lightseq_tf

keras = tf.keras


def test_overflow_step_is_skipped_and_training_recovers():
    keras.utils.set_random_seed(0)
    config = lightseq_tf.LSTransformer.get_config(
        max_batch_tokens=256, max_seq_len=16, vocab_size=20, padding_idx=0, num_encoder_layer=1,
        num_decoder_layer=1, hidden_size=32, intermediate_size=64, nhead=4,
        attn_prob_dropout_ratio=0.0, activation_dropout_ratio=0.0, hidden_dropout_ratio=0.0,
        pre_layer_norm=True, activation_fn="relu")
    model = lightseq_tf.LSTransformer(config, dtype="mixed_float16")
    rng = np.random.default_rng(0)
    src = tf.constant(rng.integers(3, 20, (8, 6)), tf.int32)
    tgt = tf.constant(rng.integers(3, 20, (8, 7)), tf.int32)
    model((src, tgt[:, :-1]))
    opt = keras.optimizers.LossScaleOptimizer(lightseq_tf.LSAdam(1e-2), initial_scale=2.0 ** 15)
    opt.build(model.trainable_variables)

    @tf.function
    def step(blow_up):
        with tf.GradientTape() as tape:
            logits = model((src, tgt[:, :-1]), training=True)
            assert logits.dtype == tf.float16
            loss = model.loss_function(tgt[:, 1:], logits) * blow_up
            scaled = opt.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    first = float(step(tf.constant(1.0)))
    before = [w.numpy() for w in model.trainable_variables]
    scale = float(opt.dynamic_scale)
    # Loss x 1e6 at scale 2^15: the float16 gradients overflow to inf.
    step(tf.constant(1e6))
    assert float(opt.dynamic_scale) == scale / 2
    for w, b in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(w.numpy(), b)  # the step was skipped
    losses = [float(step(tf.constant(1.0))) for _ in range(20)]
    assert all(np.isfinite(losses)) and losses[-1] < first
    for w in model.trainable_variables + opt.variables:
        assert np.all(np.isfinite(np.asarray(w.numpy(), np.float64))), w.name
