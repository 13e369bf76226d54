"""Layer checks that must hold under both Keras 3 and tf_keras: run in-process
by test_layers.py (Keras 3) and as a script with TF_USE_LEGACY_KERAS=1
(tf_keras, NeurST's Keras 2) by the same test file."""
import math
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
import lightseq_tf  # noqa: E402
from test_embedding import neurst_signal  # noqa: E402

keras = tf.keras
EMB = dict(vocab_size=50, embedding_dim=16, max_batch_tokens=64, max_seq_len=12, padding_idx=0,
           dropout=0.25)
CE = dict(max_batch_tokens=64, padding_idx=0, epsilon=0.1)


def ids():
    return tf.constant([[5, 7, 9, 0], [3, 0, 0, 0]], tf.int32)


def check_embedding_values_and_gradient():
    layer = lightseq_tf.LSTransformerEmbeddingLayer(EMB)
    x = ids()
    with tf.GradientTape() as tape:
        y = layer(x, training=False)
        loss = tf.reduce_sum(y * y)
    table = layer.embeddings
    want = tf.gather(table, x) * math.sqrt(16) + neurst_signal(4, 16)
    want *= tf.cast(x != 0, tf.float32)[..., None]
    np.testing.assert_allclose(y.numpy(), want.numpy(), rtol=2e-6, atol=2e-6)
    grad = tf.convert_to_tensor(tape.gradient(loss, table))
    assert grad.dtype == tf.float32 and grad.shape == (50, 16)
    np.testing.assert_array_equal(grad.numpy()[0], 0)  # padding row
    assert np.count_nonzero(np.abs(grad.numpy()).sum(1)) == 4  # ids 3, 5, 7, 9


def check_training_flag_and_seeds():
    layer = lightseq_tf.LSTransformerEmbeddingLayer(EMB)
    x = ids()
    a = layer(x, training=True).numpy()
    b = layer(x, training=True).numpy()
    c = layer(x, training=False).numpy()
    kept = np.count_nonzero(a[0, :3]) / a[0, :3].size
    assert 0.5 < kept < 0.95, kept
    assert not np.array_equal(a, b)  # a fresh seed per call
    assert np.count_nonzero(c[0, :3]) == c[0, :3].size
    tf.random.set_seed(3)
    d = layer(x, training=True).numpy()
    tf.random.set_seed(3)
    e = layer(x, training=True).numpy()
    np.testing.assert_array_equal(d, e)


def check_mixed_precision():
    for policy, dtype in (("mixed_float16", tf.float16), ("mixed_bfloat16", tf.bfloat16)):
        layer = lightseq_tf.LSTransformerEmbeddingLayer(EMB, dtype=policy)
        with tf.GradientTape() as tape:
            y = layer(ids(), training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        assert y.dtype == dtype, (policy, y.dtype)
        assert layer.embeddings.dtype == tf.float32
        assert tf.convert_to_tensor(tape.gradient(loss, layer.embeddings)).dtype == tf.float32
    fp16 = lightseq_tf.LSTransformerEmbeddingLayer(dict(EMB, fp16=True))
    assert fp16(ids()).dtype == tf.float16


def check_limits():
    layer = lightseq_tf.LSTransformerEmbeddingLayer(EMB)
    for bad, match in ((tf.zeros([2, 13], tf.int32), "max_positions = 12"),
                       (tf.zeros([6, 11], tf.int32), "max_batch_tokens = 64"),
                       (tf.constant([[1, 50]]), r"outside \[0, vocab = 50\)")):
        try:
            layer(bad)
        except tf.errors.InvalidArgumentError as e:
            assert match.replace("\\", "") in str(e) or __import__("re").search(match, str(e)), e
        else:
            raise AssertionError("no error for " + match)


def check_model_save_and_reload():
    inp = keras.Input([None], dtype="int32")
    emb = lightseq_tf.LSTransformerEmbeddingLayer(EMB)
    logits = keras.layers.Dense(50)(emb(inp))
    model = keras.Model(inp, logits)
    x = ids()
    want = model(x).numpy()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.keras")
        model.save(path)
        again = keras.models.load_model(path)
        np.testing.assert_allclose(again(x).numpy(), want, rtol=1e-6, atol=1e-6)
        sm = os.path.join(d, "sm")
        if hasattr(model, "export"):  # Keras 3
            model.export(sm)
        else:
            tf.saved_model.save(model, sm)
        del model, again
        loaded = tf.saved_model.load(sm)  # no Python class: the ops alone
        fn = loaded.signatures["serving_default"]
        out = list(fn(**{fn.structured_input_signature[1].popitem()[0]: x}).values())[0]
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-6, atol=1e-6)


def check_cross_entropy_layer():
    logits = tf.random.stateless_normal([2, 4, 50], [1, 2])
    t = ids()
    for reduction in ("sum", "mean", "none"):
        layer = lightseq_tf.LSCrossEntropyLayer(CE, reduction=reduction)
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss, nll = layer(logits, t)
        g = tape.gradient(loss, logits)
        logp = tf.nn.log_softmax(logits)
        soft = tf.one_hot(t, 50, on_value=0.9, off_value=0.1 / 49)
        keep = tf.cast(t != 0, tf.float32)
        ref_loss = -tf.reduce_sum(soft * logp, -1) * keep
        ref_nll = -tf.reduce_sum(tf.one_hot(t, 50) * logp, -1) * keep
        if reduction == "sum":
            ref_loss, ref_nll = tf.reduce_sum(ref_loss), tf.reduce_sum(ref_nll)
        elif reduction == "mean":
            ref_loss, ref_nll = (tf.reduce_sum(v) / 4 for v in (ref_loss, ref_nll))
        np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(nll.numpy(), ref_nll.numpy(), rtol=1e-5, atol=1e-6)
        assert g.shape == logits.shape and np.all(g.numpy()[1, 1:] == 0)
        again = lightseq_tf.LSCrossEntropyLayer.from_config(layer.get_config())
        assert again.config == layer.config and again.reduction == reduction
    try:
        lightseq_tf.LSCrossEntropyLayer(CE)(tf.zeros([8, 9, 50]), tf.ones([8, 9], tf.int32))
    except tf.errors.InvalidArgumentError as e:
        assert "max_batch_tokens = 64" in str(e)
    else:
        raise AssertionError("no max_batch_tokens error")


def check_encoder_layer():
    import test_encoder_layer as enc
    c = enc.config(True, "relu")
    layer = lightseq_tf.LSTransformerEncoderLayer(c)
    x = tf.random.stateless_normal([2, 5, 32], [1, 1])
    lengths = tf.constant([5, 2])
    layer(x, lengths=lengths)
    enc.randomize(layer)
    w = enc.weights(layer)
    assert sorted(w) == sorted(enc.NEURST_NAMES), sorted(w)
    y = layer(x, lengths=lengths)
    ref = enc.neurst_reference(x, lengths, w, c, 1e-6)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    inp = keras.Input([None, 32])
    model = keras.Model(inp, lightseq_tf.LSTransformerEncoderLayer(c)(inp))
    with tempfile.TemporaryDirectory() as d:
        model.save(os.path.join(d, "m.keras"))
        again = keras.models.load_model(os.path.join(d, "m.keras"))
        np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)


def check_decoder_layer():
    import test_decoder_layer as dec
    import test_encoder_layer as enc
    c, layer, x, memory, mem_lengths = dec.make()
    w = enc.weights(layer)
    assert sorted(w) == sorted(dec.NAMES), sorted(w)
    full = layer(x, memory, memory_lengths=mem_lengths)
    ref = dec.neurst_reference(x, memory, mem_lengths, w, c)
    np.testing.assert_allclose(full.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)
    cache = layer.memorize_memory(memory)
    cache.update(tf.nest.map_structure(lambda t: tf.tile(t[None], [3, 1, 1, 1]),
                                       layer.create_decoding_internal_cache()))
    steps = [layer(x[:, i:i + 1], memory_lengths=mem_lengths, cache=cache)
             for i in range(x.shape[1])]
    np.testing.assert_allclose(tf.concat(steps, 1).numpy(), full.numpy(), rtol=2e-5, atol=2e-5)


def check_transformer_model():
    """One training step, generation rescored by a full forward, export."""
    import test_transformer_model as tm
    tf.random.set_seed(1)
    model = tm.built(pre_layer_norm=False)
    src = tm.source_batch()
    tgt_in = tf.concat([tf.fill([6, 1], tm.BOS), src], 1)
    tgt_out = tf.concat([src, tf.zeros([6, 1], tf.int32)], 1)
    with tf.GradientTape() as tape:
        loss = model.loss_function(tgt_out, model((src, tgt_in), training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads) and np.isfinite(float(loss))
    ids, scores = model.generate(src, beam_size=2, max_len=5)
    np.testing.assert_allclose(scores.numpy(), tm.rescore(model, src, ids, 0.6), rtol=1e-4,
                               atol=1e-4)
    with tempfile.TemporaryDirectory() as d:
        model.export_generator(d, beam_size=2, max_len=5)
        out = tf.saved_model.load(d).signatures["serving_default"](src_ids=src)
    np.testing.assert_array_equal(out["ids"].numpy(), ids.numpy())


def check_transformer_model_from_fresh_objects():
    """generate / encode / export_generator / load_weights on a model that
    was never called (test_transformer_model's fresh-object tests)."""
    import pathlib
    import test_transformer_model as tm
    tm.test_fresh_model_generates()
    tm.test_fresh_model_generates_inside_a_tf_function()
    tm.test_fresh_model_encodes(pre_ln=False)
    for test in (tm.test_fresh_model_exports_its_generator,
                 tm.test_fresh_model_loads_weights_then_generates):
        with tempfile.TemporaryDirectory() as d:
            test(pathlib.Path(d))


CHECKS = [check_encoder_layer, check_decoder_layer, check_transformer_model,
          check_transformer_model_from_fresh_objects, check_embedding_values_and_gradient,
          check_training_flag_and_seeds,
          check_mixed_precision, check_limits, check_model_save_and_reload,
          check_cross_entropy_layer]

if __name__ == "__main__":
    for check in CHECKS:
        check()
        keras.mixed_precision.set_global_policy("float32")
        print("passed", check.__name__, flush=True)
    from lightseq_tf.layers._keras import KERAS3
    print("ALL OK keras", "3" if KERAS3 else "2.")
