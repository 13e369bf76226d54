"""Export to CTranslate2 (lightseq_tf.export.ctranslate2), run by CTranslate2
on the CPU, against our own model as the reference.

Trained models (a few hundred steps on a learnable task: reverse a sentence
and map every word through a fixed dictionary, so outputs are varied and
mostly right, not degenerate): CTranslate2 float32 greedy decoding gives the
same tokens as LSTransformer.generate(beam_size=1) for every sentence; beam 4
with length penalty 0 the same best hypothesis for >= 99 % of sentences and
scores within 1e-4 where it does; with a length penalty, CTranslate2's score
is the log-probability over length ** alpha (EOS counted), which is
checked against our full-forward rescoring; int8 BLEU within 0.5 of float32.
Untrained models of every mapped configuration: CTranslate2's teacher-forced
log-probabilities equal our forward's. Saves (.keras, tf_keras SavedModel)
convert to the same bytes as the model in memory. NeurST model directories
are read without NeurST here (bad input); tests/neurst converts real ones.
"""
import filecmp
import json
import os
import subprocess
import sys

import ctranslate2
import numpy as np
import pytest
import sacrebleu
import tensorflow as tf
import yaml
import test_transformer_model
from made_once import made_once
from subprocess_env import subprocess_env

import lightseq_tf
from lightseq_tf.export import ctranslate2 as export
from lightseq_tf.export.ctranslate2.lstransformer import load_lstransformer

PAD, BOS, EOS = test_transformer_model.PAD, test_transformer_model.BOS, test_transformer_model.EOS
WORDS = 21                      # content words of each language
V = 3 + WORDS                   # target (and joint) vocabulary
MAX_LEN = 24                    # decoding limit, both engines (tokens, EOS included)
DEV = 200                       # dev sentences
TRAIN_STEPS = 300               # ~95 % of the dev set right: learned, not degenerate
# float32 log-probabilities: the same math in another order (CTranslate2's
# GEMMs and fused kernels vs TF's); observed differences ~1e-6 per token.
LOGP_TOL = 1e-4

TARGET_VOCAB = ["<pad>", "<s>", "</s>"] + ["de%d" % i for i in range(WORDS)]
SOURCE_VOCAB = TARGET_VOCAB + ["<en%d>" % i for i in range(3)]  # separate: 3 more ids

VARIANTS = {  # name: model config overrides
    "pre_ln_relu_shared": dict(pre_layer_norm=True, activation_fn="relu"),
    "post_ln_gelu_separate": dict(pre_layer_norm=False, activation_fn="gelu",
                                  share_embeddings=False, src_vocab_size=len(SOURCE_VOCAB),
                                  tie_output=False),
}


def model_config(**kw):
    fields = dict(max_batch_tokens=8192, max_seq_len=32, vocab_size=V)
    fields.update(kw)
    return test_transformer_model.model_config(**fields)


def vocabularies(model):
    separate = not model.config.share_embeddings
    return TARGET_VOCAB, (SOURCE_VOCAB if separate else None)


class Task:
    """Source: 3-10 random words; target: the source reversed, each word mapped
    through a fixed random dictionary."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.dictionary = np.random.default_rng(0).permutation(WORDS) + 3

    def pairs(self, n):
        out = []
        for _ in range(n):
            src = self.rng.integers(3, 3 + WORDS, self.rng.integers(3, 11))
            out.append((src, self.dictionary[src - 3][::-1]))
        return out


def batch(pairs):
    s = max(len(p[0]) for p in pairs)
    t = max(len(p[1]) for p in pairs) + 1
    src, tin, tout = (np.zeros([len(pairs), w], np.int32) for w in (s, t, t))
    for i, (a, b) in enumerate(pairs):
        src[i, :len(a)], tin[i, 0], tin[i, 1:len(b) + 1] = a, BOS, b
        tout[i, :len(b)], tout[i, len(b)] = b, EOS
    return src, tin, tout


def train(model, steps, seed=0):
    tf.keras.utils.set_random_seed(seed)
    opt = lightseq_tf.LSAdam(2e-3)
    task = Task(seed + 1)

    @tf.function(reduce_retracing=True)
    def step(src, tin, tout):
        with tf.GradientTape() as tape:
            loss = model.loss_function(tout, model((src, tin), training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(steps):
        loss = step(*batch(task.pairs(64)))
    return float(loss)


def built(seed=0, **kw):
    tf.keras.utils.set_random_seed(seed)
    model = lightseq_tf.LSTransformer(model_config(**kw))
    model((tf.ones([1, 3], tf.int32), tf.ones([1, 2], tf.int32)))
    return model


@pytest.fixture(scope="session")
def dev():
    return Task(seed=99).pairs(DEV)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def trained(request, tmp_path_factory):
    """(model, CTranslate2 float32 dir, int8 dir), trained once per session
    (saved, and loaded by the other xdist workers)."""
    def make(path):
        model = built(**VARIANTS[request.param])
        loss = train(model, TRAIN_STEPS)
        print("%s: training loss %.3f after %d steps" % (request.param, loss, TRAIN_STEPS))
        model.save(str(path / "model.keras"))
        target, source = vocabularies(model)
        for q in ("float32", "int8"):
            export.convert_lstransformer(model, str(path / q), target,
                                         source_vocabulary=source, quantization=q)

    path = made_once(tmp_path_factory, "ct2_" + request.param, make)
    return load_lstransformer(path / "model.keras"), str(path / "float32"), str(path / "int8")


def tokens(ids, vocab):
    return [vocab[i] for i in ids]


def until_eos(row):
    row = list(row)
    return row[:row.index(EOS)] if EOS in row else row


def ct2_decode(path, model, pairs, beam_size, length_penalty=0.0):
    """CTranslate2's search set up as ours: empty output allowed, the same
    length limit (CTranslate2's defaults: min_decoding_length 1, length
    penalty 1, max_decoding_length 256)."""
    target, source = vocabularies(model)
    translator = ctranslate2.Translator(path, device="cpu")
    results = translator.translate_batch(
        [tokens(p[0], source or target) for p in pairs], max_batch_size=64, beam_size=beam_size,
        length_penalty=length_penalty, min_decoding_length=0, max_decoding_length=MAX_LEN,
        return_scores=True)
    index = {t: i for i, t in enumerate(target)}
    return [[index[t] for t in r.hypotheses[0]] for r in results], \
        np.array([r.scores[0] for r in results])


def ours(model, pairs, beam, alpha=0.0):
    src = batch(pairs)[0]
    ids, scores = model.generate(tf.constant(src), beam_size=beam, max_len=MAX_LEN,
                                 length_penalty=alpha)
    return [until_eos(r) for r in ids.numpy()], scores.numpy()


def forward_logp(model, pairs, hyps):
    """log P(hyp + EOS | source) from one teacher-forced full forward."""
    src = batch(pairs)[0]
    hyps = [list(h) + [EOS] for h in hyps]
    t = max(map(len, hyps))
    tin, tout = np.zeros([len(hyps), t], np.int32), np.zeros([len(hyps), t], np.int32)
    for i, h in enumerate(hyps):
        tin[i, 0], tin[i, 1:len(h)], tout[i, :len(h)] = BOS, h[:-1], h
    logp = tf.nn.log_softmax(model((tf.constant(src), tf.constant(tin)), training=False)).numpy()
    tok = np.take_along_axis(logp, tout[:, :, None].astype(np.int64), 2)[:, :, 0]
    return np.array([tok[i, :len(h)].sum() for i, h in enumerate(hyps)])


def bleu(hyps, pairs):
    return sacrebleu.corpus_bleu([" ".join(map(str, h)) for h in hyps],
                                 [[" ".join(map(str, p[1])) for p in pairs]]).score


def test_greedy_float32_gives_our_tokens_for_every_sentence(trained, dev):
    model, f32, _ = trained
    want, _ = ours(model, dev, beam=1)
    got, _ = ct2_decode(f32, model, dev, beam_size=1)
    right = sum(w == list(p[1]) for w, p in zip(want, dev))
    print("greedy: %d of %d dev sentences translated right" % (right, len(dev)))
    assert right > 0.2 * len(dev)  # learned: outputs are not degenerate
    differ = [(i, w, g) for i, (w, g) in enumerate(zip(want, got)) if w != g]
    assert not differ, differ[:5]


def test_beam4_no_length_penalty_same_best_hypothesis_and_score(trained, dev):
    model, f32, _ = trained
    want, want_scores = ours(model, dev, beam=4)
    got, got_scores = ct2_decode(f32, model, dev, beam_size=4)
    same = np.array([w == g for w, g in zip(want, got)])
    print("beam 4, length penalty 0: %d of %d best hypotheses equal" % (same.sum(), len(dev)))
    # Where they differ, it is the searches (ours also keeps hypotheses that
    # end among the 2k candidates past the first k; CTranslate2 and NeurST
    # do not), not the model: each score is its hypothesis' log-probability.
    for i in np.flatnonzero(~same):
        print("sentence %d: ours %s %.4f, CTranslate2 %s %.4f"
              % (i, want[i], want_scores[i], got[i], got_scores[i]))
    assert same.mean() >= 0.99
    np.testing.assert_allclose(got_scores[same], want_scores[same], rtol=0, atol=LOGP_TOL)


def test_length_penalty_is_log_probability_over_length_with_eos(trained, dev):
    """CTranslate2 normalises a finished hypothesis by n ** alpha, n its
    tokens with EOS, once the search is over (its beam ranks raw
    log-probabilities and stops after beam_size finished hypotheses); ours
    and NeurST's by GNMT's ((5 + n) / 6) ** alpha, inside the search. Checked
    on CTranslate2's own hypotheses against our teacher-forced log-probability."""
    model, f32, _ = trained
    got, got_scores = ct2_decode(f32, model, dev, beam_size=4, length_penalty=0.6)
    n = np.array([len(h) + 1 for h in got])
    ended = n <= MAX_LEN  # the others stopped at the limit, without EOS
    assert ended.mean() > 0.9
    logp = forward_logp(model, dev, got)
    np.testing.assert_allclose(got_scores[ended], logp[ended] / n[ended] ** 0.6, rtol=1e-5,
                               atol=LOGP_TOL)
    want, _ = ours(model, dev, beam=4, alpha=0.6)
    same = sum(w == g for w, g in zip(want, got))
    print("length penalty 0.6: %d of %d best hypotheses equal; BLEU ours %.2f, CTranslate2 %.2f"
          % (same, len(dev), bleu(want, dev), bleu(got, dev)))


def test_int8_bleu_within_half_a_point_of_float32(trained, dev):
    model, f32, int8 = trained
    full, _ = ct2_decode(f32, model, dev, beam_size=4)
    quantized, _ = ct2_decode(int8, model, dev, beam_size=4)
    b32, b8 = bleu(full, dev), bleu(quantized, dev)
    print("BLEU float32 %.2f, int8 %.2f (%d of %d hypotheses differ)"
          % (b32, b8, sum(a != b for a, b in zip(full, quantized)), len(dev)))
    assert abs(b8 - b32) <= 0.5


CONFIGS = {  # every mapped configuration, untrained (random LayerNorm parameters too)
    "pre_ln_relu_shared_tied": dict(),
    "post_ln_relu_shared_tied": dict(pre_layer_norm=False),
    "pre_ln_gelu_separate_tied": dict(activation_fn="gelu", share_embeddings=False,
                                      src_vocab_size=len(SOURCE_VOCAB)),
    "post_ln_gelu_tanh_separate_untied": dict(pre_layer_norm=False, activation_fn="gelu_tanh",
                                              share_embeddings=False,
                                              src_vocab_size=len(SOURCE_VOCAB),
                                              tie_output=False),
    "pre_ln_relu_shared_untied_3_1_layers": dict(tie_output=False, num_encoder_layer=3,
                                                 num_decoder_layer=1),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_teacher_forced_log_probabilities_equal_ours(name, tmp_path):
    model = built(seed=3, **CONFIGS[name])
    for v in model.weights:
        if v.name in ("gamma", "beta") or v.name.endswith(("gamma:0", "beta:0")):
            v.assign(v + tf.random.normal(v.shape, stddev=0.3))
    target, source = vocabularies(model)
    path = export.convert_lstransformer(model, str(tmp_path / "ct2"), target,
                                        source_vocabulary=source)
    pairs = Task(seed=5).pairs(8)
    hyps = [p[1] for p in pairs]
    translator = ctranslate2.Translator(path, device="cpu")
    results = translator.score_batch([tokens(p[0], source or target) for p in pairs],
                                     [tokens(h, target) for h in hyps])
    src = batch(pairs)[0]
    _, tin, tout = batch(pairs)
    logp = tf.nn.log_softmax(model((tf.constant(src), tf.constant(tin)), training=False)).numpy()
    for i, (h, r) in enumerate(zip(hyps, results)):
        want = logp[i, np.arange(len(h) + 1), tout[i, :len(h) + 1]]  # EOS included
        np.testing.assert_allclose(r.log_probs, want, rtol=0, atol=LOGP_TOL)


def test_the_written_model(tmp_path):
    """Config, vocabularies and the explicit position table."""
    model = built(**VARIANTS["post_ln_gelu_separate"])
    path = export.convert_lstransformer(model, str(tmp_path / "ct2"), TARGET_VOCAB,
                                        source_vocabulary=SOURCE_VOCAB)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    assert config["layer_norm_epsilon"] == model.epsilon == 1e-6
    assert (config["decoder_start_token"], config["eos_token"], config["unk_token"]) == \
        ("<s>", "</s>", "<pad>")  # no <unk> in these vocabularies: the padding token
    assert config["add_source_eos"] is False and config["add_source_bos"] is False
    with open(os.path.join(path, "source_vocabulary.json")) as f:
        assert json.load(f) == SOURCE_VOCAB
    with open(os.path.join(path, "target_vocabulary.json")) as f:
        assert json.load(f) == TARGET_VOCAB
    spec = export.LSTransformerConverter(model, TARGET_VOCAB, SOURCE_VOCAB)._load()
    table = spec.encoder.position_encodings.encodings
    assert table.shape == (model.config.max_seq_len, 32)
    # NeurST's sinusoid from position 0 (CTranslate2's built-in one starts at 1).
    pos = np.arange(32)[:, None]
    inv = np.exp(-np.arange(16) * np.log(1e4) / 15)
    np.testing.assert_allclose(table, np.concatenate([np.sin(pos * inv), np.cos(pos * inv)], 1),
                               atol=2e-5)
    assert float(spec.decoder.scale_embeddings) == np.float32(np.sqrt(32))


def test_keras_and_saved_model_saves_convert_to_the_same_bytes(tmp_path):
    model = built(**VARIANTS["pre_ln_relu_shared"])
    want = export.convert_lstransformer(model, str(tmp_path / "memory"), TARGET_VOCAB)
    model.save(str(tmp_path / "model.keras"))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(TARGET_VOCAB) + "\n")
    # the CLI, in a fresh process, from the .keras file
    subprocess.run([sys.executable, "-m", "lightseq_tf.export.ctranslate2", "--model_dir",
                    str(tmp_path / "model.keras"), "--vocabulary", str(vocab), "--output_dir",
                    str(tmp_path / "cli")], check=True, env=subprocess_env(), cwd=str(tmp_path))
    assert filecmp.cmp(os.path.join(want, "model.bin"), str(tmp_path / "cli" / "model.bin"),
                       shallow=False)
    # tf_keras (NeurST's Keras), whose files Keras 3 does not read (nor the
    # reverse): its .keras file and its SavedModel directory
    script = (
        "import filecmp, os, sys, tensorflow as tf, lightseq_tf;"
        "from lightseq_tf.export import ctranslate2 as e;"
        "m = lightseq_tf.LSTransformer(lightseq_tf.LSTransformer.get_config(**eval(sys.argv[2])));"
        "m((tf.ones([1, 3], tf.int32), tf.ones([1, 2], tf.int32)));"
        "d = sys.argv[1]; v = sys.argv[3];"
        "e.convert_lstransformer(m, d + '/mem', v); m.save(d + '/m.keras'); m.save(d + '/sm');"
        "e.convert_lstransformer(d + '/m.keras', d + '/keras', v);"
        "e.convert_lstransformer(d + '/sm', d + '/sm_ct2', v);"
        "print([filecmp.cmp(d + '/mem/model.bin', d + x + '/model.bin', shallow=False)"
        "       for x in ('/keras', '/sm_ct2')])")
    fields = dict(model_config(**VARIANTS["pre_ln_relu_shared"]).__dict__)
    os.makedirs(tmp_path / "tf_keras")
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "tf_keras"), repr(fields),
                          str(vocab)], env=subprocess_env(TF_USE_LEGACY_KERAS="1"),
                         cwd=str(tmp_path), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[True, True]", run.stdout


def test_quantized_models_are_written(tmp_path):
    model = built()
    sizes = {}
    for q in ("float32", "float16", "int8", "int8_float16"):
        path = export.convert_lstransformer(model, str(tmp_path / q), TARGET_VOCAB, quantization=q)
        sizes[q] = os.path.getsize(os.path.join(path, "model.bin"))
        translator = ctranslate2.Translator(path, device="cpu", compute_type="int8_float32"
                                            if q.startswith("int8") else "float32")
        assert translator.translate_batch([["de3", "de4"]], beam_size=2,
                                          max_decoding_length=MAX_LEN)[0].hypotheses
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


# --- bad input -----------------------------------------------------------


def test_bad_lstransformer_input(tmp_path):
    model = built()
    with pytest.raises(export.UnsupportedModelError,
                       match="source vocabulary has 23 tokens but the embedding has 24 rows"):
        export.convert_lstransformer(model, str(tmp_path / "a"), TARGET_VOCAB[:-1])
    with pytest.raises(export.UnsupportedModelError, match="token 'de3' appears twice"):
        export.convert_lstransformer(model, str(tmp_path / "a"), TARGET_VOCAB[:-1] + ["de3"])
    with pytest.raises(FileNotFoundError, match="target vocabulary file not found: .*nope.txt"):
        export.convert_lstransformer(model, str(tmp_path / "a"), str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="a target vocabulary is needed"):
        export.convert_lstransformer(model, str(tmp_path / "a"), None)
    with pytest.raises(export.UnsupportedModelError,
                       match="the unknown token '<unk>' is not in the source vocabulary"):
        export.convert_lstransformer(model, str(tmp_path / "a"), TARGET_VOCAB, unk_token="<unk>")
    with pytest.raises(FileNotFoundError, match="no saved model at"):
        export.convert_lstransformer(str(tmp_path / "missing.keras"), str(tmp_path / "a"),
                                     TARGET_VOCAB)
    model.export_generator(str(tmp_path / "generator"), beam_size=1)
    with pytest.raises(export.UnsupportedModelError, match="holds no config"):
        export.convert_lstransformer(str(tmp_path / "generator"), str(tmp_path / "a"),
                                     TARGET_VOCAB)
    # a never-called model builds from its config
    export.convert_lstransformer(lightseq_tf.LSTransformer(model_config()), str(tmp_path / "b"),
                                 TARGET_VOCAB)
    with pytest.raises(RuntimeError, match="already exists"):
        export.convert_lstransformer(model, str(tmp_path / "b"), TARGET_VOCAB)
    export.convert_lstransformer(model, str(tmp_path / "b"), TARGET_VOCAB, force=True)


# A NeurST model directory as NeurST's trainer writes it (model_configs.yml,
# name-based checkpoint, vocabulary file), made here without NeurST: the
# converter reads these files only. tests/neurst converts directories NeurST
# itself wrote.
NEURST_PARAMS = {
    "modality.share_source_target_embedding": True,
    "modality.share_embedding_and_softmax_weights": True,
    "modality.dim": 8, "modality.timing": "sinusoids",
    **{"%s.%s" % (side, k): v for side in ("encoder", "decoder")
       for k, v in dict(num_layers=1, hidden_size=8, num_attention_heads=2, filter_size=16,
                        ffn_activation="relu", post_normalize=False,
                        layer_postprocess_epsilon=1e-6).items()}}
NEURST_WORDS = ["a", "b", "c", "d"]


def neurst_dir(path, params=None, extra_variables=(), drop=(), vocab_words=NEURST_WORDS,
               configs=None):
    params = dict(NEURST_PARAMS, **(params or {}))
    os.makedirs(path)
    vocab = os.path.join(path, "vocab.txt")
    with open(vocab, "w") as f:
        f.write("".join("%s %d\n" % (w, 10 - i) for i, w in enumerate(vocab_words)))
    pipeline = {"vocab_path": vocab, "language": "en", "tokenizer": None, "subtokenizer": None,
                "subtokenizer_codes": None, "glossaries": None, "reverse_sequence": False}
    config = {"model.class": "Transformer", "model.params": params, "task.class": "Seq2Seq",
              "task.params": {"src_data_pipeline.class": "TextDataPipeline",
                              "src_data_pipeline.params": pipeline,
                              "trg_data_pipeline.class": "TextDataPipeline",
                              "trg_data_pipeline.params": dict(pipeline, language="de"),
                              "target_begin_of_sentence": "bos"},
                    "enable_quant": None}
    config.update(configs or {})
    with open(os.path.join(path, "model_configs.yml"), "w") as f:
        yaml.safe_dump(config, f)
    h, v, f_ = 8, len(NEURST_WORDS) + 3, 16
    shapes = {"shared_symbol_modality_posenc_wrapper/shared_symbol_modality/shared/weights": [v, h],
              "shared_symbol_modality_posenc_wrapper/shared_symbol_modality/shared/bias": [v]}
    blocks = {"self_attention_prepost_wrapper/self_attention/qkv_transform": [h, 3 * h],
              "self_attention_prepost_wrapper/self_attention/output_transform": [h, h],
              "encdec_attention_prepost_wrapper/encdec_attention/q_transform": [h, h],
              "encdec_attention_prepost_wrapper/encdec_attention/kv_transform": [h, 2 * h],
              "encdec_attention_prepost_wrapper/encdec_attention/output_transform": [h, h],
              "ffn_prepost_wrapper/ffn/dense1": [h, f_], "ffn_prepost_wrapper/ffn/dense2": [f_, h]}
    for side in ("Encoder", "Decoder"):
        for name, shape in blocks.items():
            if side == "Encoder" and "encdec" in name:
                continue
            shapes["Transformer%s/layer_0/%s/kernel" % (side, name)] = shape
            shapes["Transformer%s/layer_0/%s/bias" % (side, name)] = shape[1:]
        for ln in ("self_attention_prepost_wrapper/ln", "ffn_prepost_wrapper/ln", "output_ln") + \
                (("encdec_attention_prepost_wrapper/ln",) if side == "Decoder" else ()):
            for p in ("gamma", "beta"):
                prefix = "" if ln == "output_ln" else "layer_0/"
                shapes["Transformer%s/%s%s/%s" % (side, prefix, ln, p)] = [h]
    shapes.update(dict(extra_variables))
    rng = np.random.default_rng(0)
    variables = {"SequenceToSequence/" + n: tf.Variable(rng.normal(size=s).astype(np.float32))
                 for n, s in shapes.items() if n not in drop}
    tf.train.CheckpointManager(tf.train.Checkpoint(**variables), path, 1, "ckpt").save(0)
    return path


def test_neurst_directory_without_neurst(tmp_path):
    """The synthetic directory converts; its vocabulary is NeurST's."""
    path = export.convert_neurst(neurst_dir(str(tmp_path / "m")), str(tmp_path / "ct2"))
    with open(os.path.join(path, "shared_vocabulary.json")) as f:
        assert json.load(f) == NEURST_WORDS + ["<UNK>", "<SEQ_BEG>", "<SEQ_END>"]
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    assert (config["decoder_start_token"], config["eos_token"], config["unk_token"],
            config["add_source_eos"]) == ("<SEQ_BEG>", "<SEQ_END>", "<UNK>", True)
    out = ctranslate2.Translator(path).translate_batch([["a", "b"]], beam_size=2)
    assert out[0].hypotheses


@pytest.mark.parametrize("case, error, match", [
    (dict(missing="model_configs.yml"), FileNotFoundError, "no model_configs.yml in"),
    (dict(missing="checkpoint"), FileNotFoundError, "no TensorFlow checkpoint in"),
    (dict(missing="vocab.txt"), FileNotFoundError, "vocab_path .*vocab.txt not found"),
    (dict(params={"encoder.ffn_activation": "swish"}), export.UnsupportedModelError,
     "encoder.ffn_activation 'swish' is not supported"),
    (dict(params={"decoder.attention_type": "relative_dot_product"}),
     export.UnsupportedModelError, "decoder.attention_type 'relative_dot_product' is not"),
    (dict(params={"encoder.attention_monotonic": True}), export.UnsupportedModelError,
     "attention_monotonic"),
    (dict(params={"decoder.layer_postprocess_epsilon": 1e-5}), export.UnsupportedModelError,
     "layer_postprocess_epsilon differ"),
    (dict(params={"modality.timing": "rope"}), export.UnsupportedModelError,
     "position timing 'rope' is not supported"),
    (dict(params={"encoder.num_relative_positions": 16}), export.UnsupportedModelError,
     "model.params encoder.num_relative_positions not supported"),
    (dict(params={"decoder.hidden_size": 16}), export.UnsupportedModelError,
     "all widths must be equal"),
    (dict(configs={"model.class": "WaitkTransformer"}), export.UnsupportedModelError,
     "model.class 'WaitkTransformer' is not supported"),
    (dict(configs={"task.class": "SpeechToText"}), export.UnsupportedModelError,
     "task.class 'SpeechToText' is not supported"),
    (dict(configs={"enable_quant": True}), export.UnsupportedModelError, "enable_quant"),
    (dict(vocab_words=NEURST_WORDS + ["e"]), export.UnsupportedModelError,
     "the source vocabulary .*vocab.txt has 8 tokens with NeurST's special symbols, but the "
     "source embedding has 7 rows"),
    (dict(drop=["TransformerDecoder/output_ln/gamma"]),
     export.UnsupportedModelError, "has no variable TransformerDecoder/output_ln/gamma"),
    (dict(extra_variables={"TransformerEncoder/layer_0/self_attention_prepost_wrapper/"
                           "self_attention/relative_embeddings": [8, 8]}),
     export.UnsupportedModelError, "encoder layer 0 has weights this converter does not map: "
     "self_attention_prepost_wrapper/self_attention/relative_embeddings"),
    (dict(extra_variables={"TransformerEncoder/layernorm_embedding/gamma": [8]}),
     export.UnsupportedModelError, "variables this converter does not map: "
     "TransformerEncoder/layernorm_embedding/gamma"),
])
def test_bad_neurst_input(tmp_path, case, error, match):
    case = dict(case)
    missing = case.pop("missing", None)
    path = neurst_dir(str(tmp_path / "m"), **case)
    if missing:
        os.remove(os.path.join(path, missing))
    with pytest.raises(error, match=match):
        export.convert_neurst(path, str(tmp_path / "ct2"))
    assert not os.path.exists(tmp_path / "ct2")  # nothing written


def test_cli_reports_errors_and_converts(tmp_path):
    path = neurst_dir(str(tmp_path / "m"), params={"decoder.ffn_activation": "swish"})
    run = subprocess.run([sys.executable, "-m", "lightseq_tf.export.ctranslate2", "--model_dir",
                          path, "--output_dir", str(tmp_path / "ct2")], env=subprocess_env(),
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert run.returncode == 1
    assert "error: NeurST model" in run.stderr and \
        "decoder.ffn_activation 'swish' is not supported" in run.stderr
    good = neurst_dir(str(tmp_path / "good"))
    run = subprocess.run([sys.executable, "-m", "lightseq_tf.export.ctranslate2", "--model_dir",
                          good, "--output_dir", str(tmp_path / "int8"), "--quantization", "int8"],
                         env=subprocess_env(), capture_output=True, text=True, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "CTranslate2 model (int8) written to" in run.stdout
    with open(tmp_path / "int8" / "config.json") as f:
        assert json.load(f)["eos_token"] == "<SEQ_END>"
