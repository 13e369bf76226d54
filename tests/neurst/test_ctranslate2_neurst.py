"""CTranslate2 export of NeurST Transformer model directories, against NeurST
itself: its own beam search and forward, built with NeurST's native layers in
this process (swaps.native()), on directories NeurST wrote.

A tiny Transformer trained by NeurST's own CLI with our layers (the demo's
driver, its generated English->German corpus with Moses + BPE, 200 steps):
at its step-150 checkpoint (half-trained: real choices to make), CTranslate2
float32 greedy decoding gives NeurST's greedy tokens for every dev sentence
(and translate_neurst, the demo's entry, NeurST's detokenised text); beam 4
with length penalty 0 the same best hypothesis for >= 99 % and scores within
1e-4; at step 200, int8 BLEU within 0.5 of float32 on the whole dev set.
The initial checkpoint written by a native NeurST process and the same
weights written again by an accelerated model convert to the same bytes.
Untrained models of the other mapped configurations: CTranslate2's
teacher-forced log-probabilities equal NeurST's forward's.
"""
import contextlib
import filecmp
import json
import os
import shutil

import ctranslate2
import demo  # examples/neurst (conftest puts it on sys.path)
import demo_corpus
import numpy as np
import pytest
import tensorflow as tf
from neurst.layers.common_layers import PositionEmbeddingWrapper
from neurst.layers.search import build_search_layer
from neurst.metrics.bleu import BLEU
from neurst.tasks import build_task
from neurst.utils import compat
from neurst.utils.checkpoints import NameBasedCheckpointManager, restore_checkpoint_if_possible
from neurst.utils.configurable import ModelConfigs
from made_once import made_once
from neurst_env import subprocess_env

from lightseq_tf.export import ctranslate2 as export
from lightseq_tf.export.ctranslate2 import neurst as neurst_reader
from lightseq_tf.export.ctranslate2.translate import neurst_pipelines
from lightseq_tf.integrations.neurst import layers, swaps

STEPS = 200               # BLEU ~98 on the dev set: int8 against float32 on a trained model
MID = 150                 # BLEU ~50 (NeurST's shuffle is unseeded): decoding with real choices
DEV = 200                 # of the demo corpus' 500 dev sentences, decoded by NeurST
# float32 log-probabilities: the same math in another order (CTranslate2's
# GEMMs and fused kernels vs TF's); observed differences ~1e-6 per token.
LOGP_TOL = 1e-4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The demo's corpus and a model NeurST's CLI trained with our layers,
    made once per session (shared by the xdist workers)."""
    def make(path):
        work = str(path)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PYTHONPATH", subprocess_env(work)["PYTHONPATH"])  # the demo's NeurST runs
            corpus = demo_corpus.neurst_corpus(os.path.join(work, "data"), generated=True)
            configs = demo.neurst_configs(work, corpus, "tiny", STEPS, dropout=0.0,
                                          summary_steps=50, save_steps=50)
            demo.make_initial_checkpoint(configs["train"], os.path.join(work, "init"))
            demo.train("accelerated", True, configs, work, os.path.join(work, "init"))
        with open(os.path.join(work, "corpus.json"), "w") as f:
            json.dump({"max_len": corpus["max_len"], "dev": [corpus["files"]["dev_en"],
                                                             corpus["files"]["dev_de"]]}, f)

    shared = str(made_once(tmp_path_factory, "ct2_neurst", make))
    with open(os.path.join(shared, "corpus.json")) as f:
        corpus = json.load(f)
    with open(corpus["dev"][0], encoding="utf-8") as f:
        sources = f.read().splitlines()[:DEV]
    with open(corpus["dev"][1], encoding="utf-8") as f:
        references = f.read().splitlines()[:DEV]
    work = str(tmp_path_factory.mktemp("ct2_neurst_worker"))
    with open(os.path.join(work, "dev.en"), "w", encoding="utf-8") as f:
        f.write("\n".join(sources) + "\n")
    model_dir = os.path.join(shared, "accelerated")
    mid = os.path.join(model_dir, "ckpt-%d" % MID)
    f32 = export.convert_neurst(model_dir, os.path.join(work, "ct2_float32"), checkpoint=mid)
    return dict(work=work, init=os.path.join(shared, "init"), model_dir=model_dir, mid=mid,
                ct2=f32, sources=sources, references=references, max_len=corpus["max_len"] + 10,
                source_file=os.path.join(work, "dev.en"), dev_files=corpus["dev"])


def until_eos(row, eos):
    row = [int(t) for t in row]
    return row[:row.index(eos)] if eos in row else row


def neurst_decode(model_dir, checkpoint, sources, beam, alpha, max_len, enable_unk=False,
                  batch=100):
    """NeurST's own beam search (its SequenceGenerator's layer and inputs),
    with NeurST's native layers: (target ids up to EOS, scores)."""
    src_dp, trg_dp = neurst_pipelines(model_dir)
    eos = trg_dp.meta["eos_id"]
    with swaps.native():
        configs = ModelConfigs.load(model_dir)
        task = build_task(configs)
        model = task.build_model(configs)
        assert restore_checkpoint_if_possible(model, checkpoint)
        search = build_search_layer({"class": "beam_search", "params": {
            "beam_size": beam, "length_penalty": alpha, "maximum_decode_length": max_len,
            "extra_decode_length": max_len, "enable_unk": enable_unk}})
        search.set_model(model)
        generate = tf.function(
            lambda feature: search(task.example_to_input({"feature": feature},
                                                         compat.ModeKeys.INFER)),
            input_signature=[tf.TensorSpec([None, None], tf.int64)])
        ids, scores = [], []
        for i in range(0, len(sources), batch):
            encoded = [src_dp.encode(s) for s in sources[i:i + batch]]
            width = max(map(len, encoded))
            padded = [e + [src_dp.meta["eos_id"]] * (width - len(e)) for e in encoded]
            hyp, score = generate(tf.constant(padded, tf.int64))
            ids += [until_eos(h, eos) for h in hyp.numpy()]
            scores += list(score.numpy())
    return ids, np.array(scores), trg_dp


def ct2_decode(path, model_dir, sources, beam, alpha, max_len, disable_unk=True):
    """CTranslate2 set up as NeurST's search: <UNK> never generated (unless
    disable_unk=False), empty output allowed, the same length limit."""
    src_dp, trg_dp = neurst_pipelines(model_dir)
    translator = ctranslate2.Translator(path, device="cpu")
    results = translator.translate_batch(
        [src_dp.preprocess(s).split() for s in sources], max_batch_size=100, beam_size=beam,
        length_penalty=alpha, disable_unk=disable_unk, min_decoding_length=0,
        max_decoding_length=max_len, max_input_length=0, return_scores=True)
    index = {t: i for i, t in enumerate(trg_dp.tokens)}
    return [[index[t] for t in r.hypotheses[0]] for r in results], \
        np.array([r.scores[0] for r in results])


def neurst_bleu(hyp_ids, trg_dp, references):
    return BLEU(language=trg_dp.meta["language"]).call(
        [trg_dp.decode(h) for h in hyp_ids], references)["sacre_bleu"]


def test_the_trained_model_is_accelerated_and_learned(run):
    with open(os.path.join(run["model_dir"] + ".train.log")) as f:
        log = f.read()
    assert "NeurST acceleration on" in log and "2 of 2 layers accelerated" in log


def test_greedy_float32_gives_neurst_tokens_for_every_sentence(run):
    want, _, trg_dp = neurst_decode(run["model_dir"], run["mid"], run["sources"], 1, 0.0,
                                    run["max_len"])
    got, _ = ct2_decode(run["ct2"], run["model_dir"], run["sources"], 1, 0.0, run["max_len"])
    bleu = neurst_bleu(want, trg_dp, run["references"])
    print("NeurST greedy BLEU %.2f on %d dev sentences at step %d" % (bleu, len(want), MID))
    assert bleu > 20  # learned: outputs are not degenerate
    differ = [(i, w, g) for i, (w, g) in enumerate(zip(want, got)) if w != g]
    assert not differ, differ[:5]
    # the demo's entry: NeurST's own pre- and post-processing around CTranslate2
    out = export.translate_neurst(run["model_dir"], run["source_file"],
                                  os.path.join(run["work"], "ct2_greedy"), quantization="float32",
                                  beam_size=1, length_penalty=0.0,
                                  max_decoding_length=run["max_len"], checkpoint=run["mid"])
    assert out["hypotheses"] == [trg_dp.decode(w) for w in want]
    assert out["sentences"] == DEV and out["sentences_per_second"] > 0


def test_beam4_no_length_penalty_same_best_hypothesis_and_score(run):
    """<UNK> allowed in both: NeurST bars it by adding -inf to its
    log-probability after the log-softmax, CTranslate2 (disable_unk) before
    it, so with it barred CTranslate2's scores are log-probabilities
    renormalised without <UNK> (higher by -log(1 - P(<UNK>)) per token)."""
    want, want_scores, trg_dp = neurst_decode(run["model_dir"], run["mid"], run["sources"], 4,
                                              0.0, run["max_len"], enable_unk=True)
    got, got_scores = ct2_decode(run["ct2"], run["model_dir"], run["sources"], 4, 0.0,
                                 run["max_len"], disable_unk=False)
    same = np.array([w == g for w, g in zip(want, got)])
    print("beam 4, length penalty 0: %d of %d best hypotheses equal" % (same.sum(), len(same)))
    assert same.mean() >= 0.99
    np.testing.assert_allclose(got_scores[same], want_scores[same], rtol=0, atol=LOGP_TOL)
    # NeurST's default length penalty (GNMT, 0.6) against CTranslate2's
    # (log-probability / length ** 0.6, after the search): measured, see README.
    gnmt, _, _ = neurst_decode(run["model_dir"], run["mid"], run["sources"], 4, 0.6,
                               run["max_len"])
    ct2, _ = ct2_decode(run["ct2"], run["model_dir"], run["sources"], 4, 0.6, run["max_len"])
    print("length penalty 0.6: %d of %d best hypotheses equal; BLEU NeurST %.2f, CTranslate2 "
          "%.2f" % (sum(a == b for a, b in zip(gnmt, ct2)), len(ct2),
                    neurst_bleu(gnmt, trg_dp, run["references"]),
                    neurst_bleu(ct2, trg_dp, run["references"])))


def test_int8_bleu_within_half_a_point_of_float32(run):
    """The demo's settings (beam 4, length penalty 0.6) on its whole dev set,
    the last checkpoint."""
    bleu, hyps = {}, {}
    for q in ("float32", "int8"):
        out = export.translate_neurst(run["model_dir"], run["dev_files"][0],
                                      os.path.join(run["work"], "ct2_" + q + "_beam"),
                                      quantization=q, max_decoding_length=run["max_len"],
                                      reference_file=run["dev_files"][1])
        bleu[q], hyps[q] = out["bleu"], out["hypotheses"]
    print("BLEU float32 %.2f, int8 %.2f (%d of %d hypotheses differ)"
          % (bleu["float32"], bleu["int8"],
             sum(a != b for a, b in zip(hyps["float32"], hyps["int8"])), len(hyps["int8"])))
    assert abs(bleu["int8"] - bleu["float32"]) <= 0.5


def test_checkpoints_written_accelerated_and_native_convert_the_same(run, tmp_path):
    """The initial checkpoint (written by a native NeurST process), and the
    same weights restored and saved again by an accelerated model (our
    layers) and by a native one, in NeurST's name-based format."""
    dirs = {"native_process": str(tmp_path / "init")}
    shutil.copytree(run["init"], dirs["native_process"])
    shutil.copy(os.path.join(run["model_dir"], "model_configs.yml"), dirs["native_process"])
    configs = ModelConfigs.load(run["model_dir"])
    for name, native in (("accelerated", False), ("native", True)):
        with swaps.native() if native else contextlib.nullcontext():
            task = build_task(configs)
            model = task.build_model(configs)
            assert restore_checkpoint_if_possible(model, run["init"])
            accelerated = [isinstance(layer, layers.NeurSTEncoderLayer)
                           for layer in model._encoder._stacking_layers]
            assert all(accelerated) if not native else not any(accelerated)
            dirs[name] = str(tmp_path / name)
            NameBasedCheckpointManager(model, dirs[name]).save(0)
            ModelConfigs.dump(task.model_configs(model), dirs[name])
    bins = {name: os.path.join(export.convert_neurst(d, str(tmp_path / ("ct2_" + name))),
                               "model.bin") for name, d in dirs.items()}
    assert filecmp.cmp(bins["native_process"], bins["accelerated"], shallow=False)
    assert filecmp.cmp(bins["native_process"], bins["native"], shallow=False)


def test_vocabulary_and_special_tokens_are_neurst_pipelines(run):
    src_dp, trg_dp = neurst_pipelines(run["model_dir"])
    with open(os.path.join(run["ct2"], "config.json")) as f:
        config = json.load(f)
    names = {k: trg_dp.tokens[trg_dp.meta[k + "_id"]] for k in ("eos", "bos", "unk")}
    assert (config["eos_token"], config["decoder_start_token"], config["unk_token"]) == \
        (names["eos"], names["bos"], names["unk"]) == ("<SEQ_END>", "<SEQ_BEG>", "<UNK>")
    assert config["add_source_eos"] is True  # NeurST's encode() appends EOS to sources
    assert config["layer_norm_epsilon"] == 1e-6
    with open(os.path.join(run["ct2"], "shared_vocabulary.json")) as f:
        assert json.load(f) == src_dp.tokens == trg_dp.tokens


@pytest.mark.parametrize("channels", [64, 7])
def test_position_table_is_neursts_sinusoid(channels):
    want = PositionEmbeddingWrapper.add_sinusoids_timing_signal(
        tf.zeros([1, 300, channels]), None).numpy()[0]
    np.testing.assert_array_equal(neurst_reader.neurst_sinusoids(300, channels), want)


# --- untrained models of the other configurations NeurST's Transformer has --

WORDS = {"src": ["a", "b", "c", "d", "e", "f"], "trg": ["u", "v", "w", "x", "y"]}
VARIANTS = {
    "pre_ln_relu_separate_tied_bias": {},
    "post_ln_gelu_shared": {"modality.share_source_target_embedding": True,
                            "encoder.post_normalize": True, "decoder.post_normalize": True,
                            "encoder.ffn_activation": "gelu", "decoder.ffn_activation": "gelu"},
    "gelu_nonapprox_untied_learned_positions": {
        "modality.share_embedding_and_softmax_weights": False, "modality.timing": "emb",
        "encoder.ffn_activation": "gelu_nonapprox", "decoder.ffn_activation": "gelu_nonapprox"},
    "post_ln_tanh_no_positions_eos_start_4_2_heads": {
        "modality.timing": None, "encoder.post_normalize": True, "decoder.post_normalize": True,
        "encoder.ffn_activation": "tanh", "decoder.ffn_activation": "relu",
        "decoder.num_attention_heads": 2, "decoder.num_layers": 1, "target_begin": "eos"},
    "sinusoids_as_variable_shared_untied": {
        "modality.share_source_target_embedding": True,
        "modality.share_embedding_and_softmax_weights": False,
        "modality.timing": {"timing": "sinusoids", "sinusoids_as_variable": True}},
}


def variant_dir(path, overrides):
    """A NeurST Transformer built natively by NeurST from a config, random
    weights (LayerNorms and biases too), written as NeurST's trainer does."""
    os.makedirs(path)
    overrides = dict(overrides)
    begin = overrides.pop("target_begin", "bos")
    shared = overrides.get("modality.share_source_target_embedding", False)
    pipelines = {}
    for side in ("src", "trg"):
        vocab = os.path.join(path, "vocab.%s" % ("trg" if shared else side))
        with open(vocab, "w") as f:
            f.write("".join(w + "\n" for w in WORDS["trg" if shared else side]))
        pipelines[side] = {"vocab_path": vocab, "language": "en"}
    params = {"modality.share_source_target_embedding": False,
              "modality.share_embedding_and_softmax_weights": True, "modality.dim": 16,
              "modality.timing": "sinusoids"}
    for side in ("encoder", "decoder"):
        params.update({"%s.%s" % (side, k): v for k, v in dict(
            num_layers=2, hidden_size=16, num_attention_heads=4, filter_size=32).items()})
    params.update(overrides)
    configs = {"model.class": "Transformer", "model.params": params, "task.class": "Seq2Seq",
               "task.params": {"src_data_pipeline.class": "TextDataPipeline",
                               "src_data_pipeline.params": pipelines["src"],
                               "trg_data_pipeline.class": "TextDataPipeline",
                               "trg_data_pipeline.params": pipelines["trg"],
                               "target_begin_of_sentence": begin}}
    rng = np.random.default_rng(0)
    with swaps.native():
        task = build_task(configs)
        model = task.build_model(configs)
        for v in model.weights:
            if v.trainable:
                v.assign(v + rng.normal(0, 0.2, v.shape).astype(np.float32))
        NameBasedCheckpointManager(model, path).save(0)
        ModelConfigs.dump(task.model_configs(model), path)
    return path, task, model


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_teacher_forced_log_probabilities_equal_neursts(name, tmp_path):
    path, task, model = variant_dir(str(tmp_path / "model"), VARIANTS[name])
    src_dp, trg_dp = neurst_pipelines(path)
    sources = [["a", "b", "c", "d"], ["e", "f"], ["c", "zzz", "a", "b", "f", "e"]]
    targets = [["u", "v"], ["w", "x", "y", "u"], ["y"]]
    if src_dp.tokens == trg_dp.tokens:  # shared: the source words are the target's
        sources = [[WORDS["trg"][ord(t) % 5] if t != "zzz" else t for t in s] for s in sources]
    src = [src_dp.encode(" ".join(s), is_processed=True) for s in sources]  # + EOS; zzz: <UNK>
    tgt = [trg_dp.encode(" ".join(t), is_processed=True) for t in targets]  # + EOS
    start = trg_dp.meta["bos_id"] if VARIANTS[name].get("target_begin", "bos") == "bos" \
        else trg_dp.meta["eos_id"]
    s_len, t_len = max(map(len, src)), max(map(len, tgt))
    eos = src_dp.meta["eos_id"]
    feed = {"src": tf.constant([s + [eos] * (s_len - len(s)) for s in src], tf.int64),
            "src_padding": tf.constant([[0.0] * len(s) + [1.0] * (s_len - len(s)) for s in src]),
            "trg_input": tf.constant([[start] + t[:-1] + [start] * (t_len - len(t)) for t in tgt],
                                     tf.int64)}
    with swaps.native():
        logp = tf.nn.log_softmax(model(feed, is_training=False)).numpy()
    out = export.convert_neurst(path, str(tmp_path / "ct2"))
    results = ctranslate2.Translator(out, device="cpu").score_batch(sources, targets)
    for i, (t, r) in enumerate(zip(tgt, results)):
        np.testing.assert_allclose(r.log_probs, logp[i, np.arange(len(t)), t], rtol=0,
                                   atol=LOGP_TOL)


def test_vocabulary_that_does_not_fit_the_checkpoint(tmp_path):
    path, _, _ = variant_dir(str(tmp_path / "model"), {})
    with open(os.path.join(path, "vocab.trg"), "a") as f:
        f.write("z\n")
    with pytest.raises(export.UnsupportedModelError,
                       match="the target vocabulary .*vocab.trg has 9 tokens with NeurST's "
                             "special symbols, but the target embedding has 8 rows"):
        export.convert_neurst(path, str(tmp_path / "ct2"))
