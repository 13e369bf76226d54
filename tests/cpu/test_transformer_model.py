"""LSTransformer: the whole model, its generation and export. References are
independent of the beam search: full (non-incremental) forwards rescore what
generate returns, a greedy loop over full forwards, and a learned copy task.
Full forwards run as whole-layer ops and composed (both_layer_paths);
generation's incremental steps are always composed."""
import numpy as np
import pytest
import tensorflow as tf

import lightseq_tf
from lightseq_tf import config as cfg
from lightseq_tf.layers.beam_search import length_penalty

pytestmark = pytest.mark.usefixtures("both_layer_paths")

PAD, BOS, EOS, V = 0, 1, 2, 12


def model_config(**kw):
    fields = dict(max_batch_tokens=512, max_seq_len=16, vocab_size=V, padding_idx=PAD,
                  num_encoder_layer=2, num_decoder_layer=2, hidden_size=32,
                  intermediate_size=64, nhead=4, attn_prob_dropout_ratio=0.0,
                  activation_dropout_ratio=0.0, hidden_dropout_ratio=0.0, pre_layer_norm=True,
                  activation_fn="relu", eos_idx=EOS, bos_idx=BOS)
    fields.update(kw)
    return lightseq_tf.LSTransformer.get_config(**fields)


def built(**kw):
    model = lightseq_tf.LSTransformer(model_config(**kw))
    model((tf.ones([1, 3], tf.int32), tf.ones([1, 2], tf.int32)))
    return model


def source_batch(seed=0, n=6):
    rng = np.random.default_rng(seed)
    src = np.zeros([n, 7], np.int32)
    for i, length in enumerate(rng.integers(2, 8, n)):
        src[i, :length] = rng.integers(3, V, length)
    return tf.constant(src)


def rescore(model, src, ids, alpha):
    """log P(ids | src) / lp(n) from one teacher-forced full forward."""
    ids = ids.numpy()
    n = np.array([list(r).index(EOS) + 1 if EOS in r else len(r) for r in ids])
    tgt_in = np.concatenate([np.full([len(ids), 1], BOS), ids[:, :-1]], 1)
    logp = tf.nn.log_softmax(model((src, tf.constant(tgt_in, tf.int32)), training=False)).numpy()
    tok = np.take_along_axis(logp, ids[:, :, None].astype(np.int64), 2)[:, :, 0]
    total = np.array([tok[i, :n[i]].sum() for i in range(len(ids))])
    return total / length_penalty(n, alpha).numpy()


def test_config_presets_and_checks():
    c = lightseq_tf.LSTransformer.get_config("transformer-big", max_batch_tokens=4096,
                                             max_seq_len=256, vocab_size=32000, padding_idx=1,
                                             num_encoder_layer=6, num_decoder_layer=6)
    assert (c.hidden_size, c.nhead, c.intermediate_size, c.pre_layer_norm) == (1024, 16, 4096, True)
    assert c.start_idx == c.eos_idx == 2
    with pytest.raises(ValueError, match="share_embeddings needs src_vocab_size"):
        model_config(src_vocab_size=20)
    with pytest.raises(ValueError, match="eos_idx must be an int in"):
        model_config(eos_idx=V)
    with pytest.raises(ValueError, match="num_decoder_layer must be a positive int"):
        model_config(num_decoder_layer=0)
    with pytest.raises(ValueError, match="divisible by nhead"):
        model_config(nhead=5)
    with pytest.raises(ValueError, match="unknown TransformerModelConfig field"):
        model_config(hidden=3)


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
def test_generate_scores_equal_a_full_forward_rescoring(beam, pre_ln):
    """The incremental decoder (caches, beam reordering) scores what it
    returns exactly as the full forward does."""
    tf.random.set_seed(3)
    model = built(pre_layer_norm=pre_ln)
    src = source_batch()
    ids, scores = model.generate(src, beam_size=beam, max_len=6, length_penalty=0.6)
    assert ids.shape[0] == 6 and ids.shape[1] <= 6 and ids.dtype == tf.int32  # stops early
    np.testing.assert_allclose(scores.numpy(), rescore(model, src, ids, 0.6), rtol=1e-4,
                               atol=1e-4)


def test_greedy_picks_the_full_forward_argmax_at_every_step():
    """Each greedy token is the argmax of a full forward over the prefix
    before it (up to float32 near-ties: the two paths sum in other orders),
    and everything after EOS is padding."""
    tf.random.set_seed(5)
    model = built(share_embeddings=False, src_vocab_size=V + 3, tie_output=False)
    src = source_batch(1)
    ids = model.generate(src, beam_size=1, max_len=7)[0].numpy()
    tgt_in = np.concatenate([np.full([len(ids), 1], BOS), ids[:, :-1]], 1)
    logits = model((src, tf.constant(tgt_in, tf.int32)), training=False).numpy()
    for b, row in enumerate(ids):
        ended = False
        for t, token in enumerate(row):
            if ended:
                assert token == PAD, (b, t)
                continue
            assert logits[b, t, token] >= logits[b, t].max() - 1e-4, (b, t)
            ended = token == EOS


def test_beam_search_learns_a_copy_task():
    tf.keras.utils.set_random_seed(0)  # Keras 3's initializers keep their own seed state
    model = built(num_encoder_layer=1, num_decoder_layer=1, label_smoothing=0.0)
    opt = lightseq_tf.LSAdam(3e-3)
    rng = np.random.default_rng(0)

    def batch(n=32):
        src, tin, tout = (np.zeros([n, w], np.int32) for w in (8, 9, 9))
        for i, length in enumerate(rng.integers(2, 7, n)):
            toks = rng.integers(3, V, length)
            src[i, :length], tin[i, 0], tin[i, 1:length + 1] = toks, BOS, toks
            tout[i, :length], tout[i, length] = toks, EOS
        return src, tin, tout

    @tf.function
    def train(src, tin, tout):
        with tf.GradientTape() as tape:
            loss = model.loss_function(tout, model((src, tin), training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(1000):  # typically converged after 300-400 steps
        loss = float(train(*batch()))
        if loss < 0.02:
            break
    assert loss < 0.1
    src, _, want = batch(16)
    ids = model.generate(tf.constant(src), beam_size=4)[0].numpy()
    width = ids.shape[1]  # the search stops when every sentence has finished
    np.testing.assert_array_equal(want[:, width:], PAD)
    np.testing.assert_array_equal(ids, want[:, :width])


def test_exported_generator_runs_without_the_python_classes(tmp_path):
    tf.random.set_seed(7)
    model = built()
    src = source_batch(2)
    want_ids, want_scores = model.generate(src, beam_size=2, max_len=5)
    model.export_generator(str(tmp_path / "gen"), beam_size=2, max_len=5)
    loaded = tf.saved_model.load(str(tmp_path / "gen"))
    out = loaded.signatures["serving_default"](src_ids=src)
    np.testing.assert_array_equal(out["ids"].numpy(), want_ids.numpy())
    np.testing.assert_allclose(out["scores"].numpy(), want_scores.numpy(), rtol=1e-6)


# A model that was never called builds itself on first use, from its config
# alone. Each use below starts from a fresh object, and the same object after
# a forward call (which Keras would have built it by) must give exactly the
# same result: nothing is rebuilt or re-initialised by the call.

def relative_names(model):
    """(variable path below the model's name, shape), in model.weights order."""
    return [((getattr(v, "path", None) or v.name).split("/", 1)[1].split(":")[0],
             tuple(v.shape)) for v in model.weights]


def forward(model, src):
    return model((src, tf.fill(tf.shape(src), BOS)), training=False)


def test_fresh_model_generates():
    tf.random.set_seed(11)
    fresh = lightseq_tf.LSTransformer(model_config(tie_output=False))
    src = source_batch(5)
    ids, scores = fresh.generate(src, beam_size=2, max_len=6)
    called = built(tie_output=False)
    assert relative_names(fresh) == relative_names(called)  # as a forward call builds it
    forward(fresh, src)
    again = fresh.generate(src, beam_size=2, max_len=6)
    np.testing.assert_array_equal(again[0].numpy(), ids.numpy())
    np.testing.assert_array_equal(again[1].numpy(), scores.numpy())
    np.testing.assert_allclose(scores.numpy(), rescore(fresh, src, ids, 0.6), rtol=1e-4,
                               atol=1e-4)


def test_fresh_model_generates_inside_a_tf_function():
    """First use inside a traced function: the variables are made eagerly."""
    tf.random.set_seed(12)
    fresh = lightseq_tf.LSTransformer(model_config(share_embeddings=False,
                                                   src_vocab_size=V + 2))
    src = source_batch(6)
    ids, scores = tf.function(lambda s: fresh.generate(s, beam_size=2, max_len=6))(src)
    forward(fresh, src)
    again = fresh.generate(src, beam_size=2, max_len=6)
    np.testing.assert_array_equal(again[0].numpy(), ids.numpy())
    np.testing.assert_allclose(again[1].numpy(), scores.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pre_ln", [True, False], ids=["pre_ln", "post_ln"])
def test_fresh_model_encodes(pre_ln):
    tf.random.set_seed(13)
    fresh = lightseq_tf.LSTransformer(model_config(pre_layer_norm=pre_ln))
    src = source_batch(7)
    memory, lengths = fresh.encode(src)
    forward(fresh, src)
    memory2, lengths2 = fresh.encode(src)
    np.testing.assert_array_equal(memory2.numpy(), memory.numpy())
    np.testing.assert_array_equal(lengths2.numpy(), lengths.numpy())


def test_fresh_model_exports_its_generator(tmp_path):
    tf.random.set_seed(14)
    fresh = lightseq_tf.LSTransformer(model_config())
    fresh.export_generator(str(tmp_path / "gen"), beam_size=2, max_len=5)
    src = source_batch(8)
    out = tf.saved_model.load(str(tmp_path / "gen")).signatures["serving_default"](src_ids=src)
    forward(fresh, src)
    ids, scores = fresh.generate(src, beam_size=2, max_len=5)
    np.testing.assert_array_equal(out["ids"].numpy(), ids.numpy())
    np.testing.assert_allclose(out["scores"].numpy(), scores.numpy(), rtol=1e-6, atol=1e-6)


def test_fresh_model_loads_weights_then_generates(tmp_path):
    tf.random.set_seed(15)
    trained = built(tie_output=False)
    path = str(tmp_path / "model.weights.h5")
    trained.save_weights(path)
    fresh = lightseq_tf.LSTransformer(model_config(tie_output=False))
    fresh.load_weights(path)
    for a, b in zip(fresh.weights, trained.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    src = source_batch(9)
    ids, scores = fresh.generate(src, beam_size=3, max_len=6)
    want_ids, want_scores = trained.generate(src, beam_size=3, max_len=6)
    np.testing.assert_array_equal(ids.numpy(), want_ids.numpy())
    np.testing.assert_allclose(scores.numpy(), want_scores.numpy(), rtol=1e-6, atol=1e-6)


def test_keras_fit_and_config_round_trip():
    tf.random.set_seed(9)
    model = built(hidden_dropout_ratio=0.1)
    model.compile(optimizer=lightseq_tf.LSAdam(1e-2), loss=model.loss_function)
    src = source_batch(3, n=16)
    tgt_out = tf.concat([src, tf.zeros([16, 1], tf.int32)], 1)
    tgt_in = tf.concat([tf.fill([16, 1], BOS), src], 1)
    hist = model.fit((src, tgt_in), tgt_out, epochs=6, batch_size=8, verbose=0)
    losses = hist.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    again = lightseq_tf.LSTransformer.from_config(model.get_config())
    assert again.config == model.config


def test_mixed_float16_generates():
    model = built()
    half = lightseq_tf.LSTransformer(model.config, dtype="mixed_float16")
    half((tf.ones([1, 3], tf.int32), tf.ones([1, 2], tf.int32)))
    for a, b in zip(half.weights, model.weights):
        a.assign(b)
    src = source_batch(4)
    ids, scores = half.generate(src, beam_size=2, max_len=5)
    assert half((src, ids), training=False).dtype == tf.float16
    assert np.all(np.isfinite(scores.numpy()))


def test_bad_arguments():
    model = built()
    src = source_batch()
    with pytest.raises(ValueError, match="beam_size must be an int >= 1"):
        model.generate(src, beam_size=0)
    with pytest.raises(ValueError, match=r"source ids must be integer \[batch, length\]"):
        model.generate(tf.constant([3, 4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_len exceeds max_seq_len = 16"):
        model.generate(src, max_len=17)
    with pytest.raises(tf.errors.InvalidArgumentError):
        model((tf.ones([1, 17], tf.int32), tf.ones([1, 2], tf.int32)))  # beyond max_seq_len
