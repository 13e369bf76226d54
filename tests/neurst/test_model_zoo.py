"""NeurST's model zoo with acceleration on: every model class whose stacks are
TransformerEncoder / TransformerDecoder, built from its smallest hparams set,
natively (swaps.native()) and accelerated with the same weights. Forward
outputs, NeurST's loss and every gradient agree, incremental decoding agrees
(and equals the teacher-forced forward), and each stack's decision is
asserted: a test that passes because nothing was swapped proves nothing.

The decisions (README's table is made from DECISIONS):
- transformer, speech_transformer, ctnmt_transformer, bert: our encoder and
  decoder layers (padding biases -> key lengths; bert is post-LN and returns
  every layer).
- waitk_transformer: its monotonic encoder's causal-and-padding bias and the
  decoder's wait-k memory bias are a key limit per query (each row sees a
  prefix of the keys), which our fused attention softmax takes with the
  queries folded into its batch axis; its streaming encoder
  (incremental_encode) appends to our encoder layer's cache.
- gpt2: our decoder layer without cross-attention (causal self-attention +
  FFN).
"""
import contextlib

import numpy as np
import pytest
import tensorflow as tf
from neurst.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropy
from neurst.models import build_model
from neurst.utils.hparams_sets import get_hyper_parameters

from lightseq_tf.integrations.neurst import layers, swaps

# float32, the same math in another order (fused LayerNorm / softmax, float32
# accumulation in both): differences ~1e-6 observed; 2e-5 (test_swapped_layers'
# bound) leaves room for summation order, not for a wrong mask or a missing term.
TOL = 2e-5
V = 23
META = {"vocab_size": V, "eos_id": V - 1, "bos_id": V - 2, "unk_id": V - 3, "pad_id": V - 1}
SPEECH_META = {"audio_feature_dim": 8, "audio_feature_channels": 1}
SRC_LEN, TRG_LEN = [6, 4, 2], [5, 3, 4]

# model -> (build kwargs, what README says of it)
DECISIONS = {
    "transformer": (dict(src_meta=META, trg_meta=META), "padding bias -> key lengths"),
    "waitk_transformer": (dict(src_meta=META, trg_meta=META, waitk_lagging=2),
                          "monotonic encoder and wait-k memory: a key limit per query; "
                          "streaming encoder: our layer's cache"),
    "speech_transformer": (dict(src_meta=SPEECH_META, trg_meta=META),
                           "audio front end stays NeurST's"),
    "bert": (dict(vocab_meta=META), "post-LN, every layer returned; BERT embedding NeurST's"),
    "gpt2": (dict(vocab_meta=META), "decoder layers without cross-attention"),
    "ctnmt_transformer": (dict(src_meta=META, trg_meta=META),
                          "its BERT, encoder and decoder all ours"),
}
# wav2vec2's feature extractor imports tensorflow_addons, which has no release
# for TF 2.21 (natively too): its TransformerEncoder is checked as it builds it.
WAV2VEC2 = "post-LN encoder (gelu_nonapprox, epsilon 1e-5) checked alone: its feature " \
    "extractor needs tensorflow_addons, which no TF 2.21 install has (natively too)"
HPARAMS = {"transformer": "transformer_toy", "waitk_transformer": "waitk_transformer_toy",
           "speech_transformer": "speech_transformer_toy", "bert": "bert_toy",
           "gpt2": "gpt2_toy", "ctnmt_transformer": "ctnmt_toy"}
SEQ2SEQ = ("transformer", "waitk_transformer", "speech_transformer", "ctnmt_transformer")


def _no_dropout(args):
    params = dict(args["model.params"])
    for k, v in params.items():
        if "dropout" in k and isinstance(v, float):
            params[k] = 0.0
    if "bert_config" in params:  # CTNMT builds its BERT from a named set
        params["bert_config"] = _register_no_dropout(params["bert_config"])
    return dict(args, **{"model.params": params})


def _register_no_dropout(name):
    from neurst.utils.hparams_sets import register_hparams_set
    registered = name + "_no_dropout"
    if not get_hyper_parameters(registered):  # {} for an unknown name
        def no_dropout():
            return _no_dropout(get_hyper_parameters(name))
        no_dropout.__name__ = registered  # NeurST registers the function's name too
        register_hparams_set(registered)(no_dropout)
    return registered


def _stacks(model):
    """The model's TransformerEncoder / TransformerDecoder stacks, by role."""
    from neurst.layers.decoders.transformer_decoder import TransformerDecoder
    from neurst.layers.encoders.transformer_encoder import TransformerEncoder
    found = {}

    def walk(layer, prefix):
        for attr, sub in sorted(vars(layer).items()):
            if isinstance(sub, (TransformerEncoder, TransformerDecoder)):
                found[prefix + attr.strip("_")] = sub
            elif isinstance(sub, tf.keras.Model) and sub is not layer:
                walk(sub, prefix + attr.strip("_") + ".")
    walk(model, "")
    return found


def _inputs(name):
    rng = np.random.default_rng(1)
    b = len(SRC_LEN)
    trg_mask = np.arange(max(TRG_LEN))[None] < np.array(TRG_LEN)[:, None]
    trg = np.where(trg_mask, rng.integers(0, V - 3, size=trg_mask.shape), META["pad_id"])
    trg_input = np.concatenate([np.full([b, 1], META["bos_id"]), trg[:, :-1]], axis=1)
    out = {"trg": tf.constant(trg, tf.int64), "trg_input": tf.constant(trg_input, tf.int64),
           "trg_padding": tf.constant(1.0 - trg_mask, tf.float32)}
    if name == "gpt2":
        return dict(out, trg_length=tf.constant(TRG_LEN, tf.int64))
    src_mask = np.arange(max(SRC_LEN))[None] < np.array(SRC_LEN)[:, None]
    if name == "bert":
        tokens = np.where(src_mask, rng.integers(0, V - 3, size=src_mask.shape), META["pad_id"])
        return {"tokens": tf.constant(tokens, tf.int64),
                "padding": tf.constant(1.0 - src_mask, tf.float32)}
    if name == "speech_transformer":  # 4 x frames: 2 x 2 subsampling keeps lengths 6, 4, 2
        frames = np.array(SRC_LEN) * 4
        audio = rng.normal(size=[b, frames.max(), 8, 1]) * (
            np.arange(frames.max())[None, :, None, None] < frames[:, None, None, None])
        return dict(out, src=tf.constant(audio, tf.float32),
                    src_length=tf.constant(frames, tf.int64))
    src = np.where(src_mask, rng.integers(0, V - 3, size=src_mask.shape), META["pad_id"])
    return dict(out, src=tf.constant(src, tf.int64),
                src_padding=tf.constant(1.0 - src_mask, tf.float32))


_PAIRS = {}


def model_pair(name):
    """(native, accelerated) models of one class with the same weights (random
    perturbations of every variable, LayerNorms included, so all of them matter)."""
    if name not in _PAIRS:
        args = _no_dropout(get_hyper_parameters(HPARAMS[name]))
        kwargs = DECISIONS[name][0]
        with swaps.native():
            native = build_model(args, name="m", **kwargs)
        ours = build_model(args, name="m", **kwargs)
        by_name = {v.name: v for v in ours.weights}
        assert sorted(by_name) == sorted(v.name for v in native.weights)  # checkpoint contract
        rng = np.random.default_rng(2)
        for v in native.weights:
            v.assign(v + rng.normal(size=v.shape).astype(np.float32) * 0.1)
            by_name[v.name].assign(v)
        _PAIRS[name] = native, ours
    return _PAIRS[name]


def _context(native):
    return swaps.native() if native else contextlib.nullcontext()


def _forward_and_loss(name, model, inputs, is_native, training):
    with _context(is_native):
        out = model(dict(inputs), is_training=training)
        if name == "bert":
            enc, pooled = out["encoder_outputs"], out["pooled_output"]
            return [enc, pooled], tf.reduce_sum(enc * tf.sin(enc)) + tf.reduce_sum(pooled ** 2)
        logits = out["logits"] if isinstance(out, dict) else out
        crit = LabelSmoothedCrossEntropy({"label_smoothing": 0.1})
        return [logits], crit.reduce_loss(inputs, logits)


@pytest.mark.parametrize("name", list(DECISIONS))
def test_each_stack_is_accelerated_with_neurst_names(name):
    native, ours = model_pair(name)
    native_stacks, our_stacks = _stacks(native), _stacks(ours)
    assert sorted(native_stacks) == sorted(our_stacks) and our_stacks
    for role, stack in our_stacks.items():
        ours_cls = (layers.NeurSTEncoderLayer if "encoder" in type(stack).__name__.lower()
                    else layers.NeurSTDecoderLayer)
        assert all(type(layer) is ours_cls for layer in stack._stacking_layers), role
        assert not any(isinstance(layer, (layers.NeurSTEncoderLayer, layers.NeurSTDecoderLayer))
                       for layer in native_stacks[role]._stacking_layers), role
        if name == "gpt2":
            assert not any(layer.cross_attention for layer in stack._stacking_layers)


@pytest.mark.usefixtures("both_layer_paths")
@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("name", list(DECISIONS))
def test_forward_loss_and_gradients_match_native(name, training):
    native, ours = model_pair(name)
    inputs = _inputs(name)
    results = []
    for model, is_native in ((native, True), (ours, False)):
        with tf.GradientTape() as tape:
            outs, loss = _forward_and_loss(name, model, inputs, is_native, training)
        variables = sorted(model.trainable_weights, key=lambda v: v.name)
        grads = tape.gradient(loss, variables)
        missing = [v.name for v, g in zip(variables, grads) if g is None]
        results.append((outs + [loss], [tf.convert_to_tensor(g) for g in grads if g is not None],
                        missing))
    (outs_n, grads_n, missing_n), (outs_o, grads_o, missing_o) = results
    assert missing_n == missing_o
    for a, b in zip(outs_n + grads_n, outs_o + grads_o):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=TOL, atol=TOL)


def _decode_steps(model, inputs, is_native, padded_length=None):
    """NeurST's incremental protocol (what its beam search calls): the
    symbols-to-logits function step by step over the teacher-forced inputs."""
    with _context(is_native):
        fn, init = model.get_symbols_to_logits_fn(dict(inputs), is_training=False,
                                                  is_inference=True,
                                                  decode_padded_length=padded_length)
        cache = init["decoder_internal_cache"]
        return tf.stack([fn(inputs["trg_input"][:, t], cache, time=t)
                         for t in range(inputs["trg_input"].shape[1])], axis=1)


@pytest.mark.usefixtures("both_layer_paths")
@pytest.mark.parametrize("padded_length", [None, 7], ids=["dynamic", "static"])
@pytest.mark.parametrize("name", SEQ2SEQ)
def test_incremental_decoding_matches_native(name, padded_length):
    native, ours = model_pair(name)
    inputs = _inputs(name)
    if name == "waitk_transformer" and padded_length:
        pytest.skip("wait-k decodes with NeurST's dynamic cache only (its get_decoder_output)")
    steps_n = _decode_steps(native, inputs, True, padded_length)
    steps_o = _decode_steps(ours, inputs, False, padded_length)
    np.testing.assert_allclose(steps_o.numpy(), steps_n.numpy(), rtol=TOL, atol=TOL)
    full = _forward_and_loss(name, ours, inputs, False, False)[0][0]
    np.testing.assert_allclose(steps_o.numpy(), full.numpy(), rtol=TOL, atol=TOL)


def test_waitk_streaming_encoder_matches_native():
    """WaitkTransformer.incremental_encode: the source arrives in chunks (2
    tokens, then 1 at a time), the encoder's self-attention cache grows, the
    decoder's memory with it; then a decoding step reads that memory."""
    native, ours = model_pair("waitk_transformer")
    src = tf.cast(_inputs("waitk_transformer")["src"][:, :4], tf.int32)  # NeurST converts to int32
    outs = []
    for model, is_native in ((native, True), (ours, False)):
        with _context(is_native):
            enc_cache, dec_cache = {}, {}
            chunks = [(src[:, :2], 0), (src[:, 2], 2), (src[:, 3], 3)]
            for chunk, time in chunks:
                padding = tf.zeros(tf.shape(chunk if chunk.shape.rank == 2 else chunk[:, None]))
                enc_cache, dec_cache = model.incremental_encode(
                    {"src": chunk, "src_padding": padding}, enc_cache, dec_cache, time=time)
            logits, _ = model.incremental_decode(tf.constant([1, 2, 3], tf.int64), dec_cache,
                                                 time=0)
            outs.append([dec_cache["memory"], logits])
    for a, b in zip(*outs):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=TOL, atol=TOL)


def test_gpt2_incremental_decoding_is_neursts_own_error():
    """NeurST's GPT-2 builds its decoding cache by memorizing a memory its
    layers do not have, and its own layer raises there; ours raises alike
    (nothing to accelerate, nothing silently different)."""
    native, ours = model_pair("gpt2")
    inputs = _inputs("gpt2")
    for model, is_native in ((native, True), (ours, False)):
        with _context(is_native), pytest.raises(ValueError, match="memor"):
            model.get_symbols_to_logits_fn(dict(inputs), is_training=False, is_inference=True)


def test_per_query_bias_must_mask_a_suffix():
    _, ours = model_pair("waitk_transformer")
    layer = _stacks(ours)["decoder"]._stacking_layers[0]
    x = tf.zeros([1, 2, layer.config.hidden_size])
    memory = tf.zeros([1, 3, layer.config.hidden_size])
    holes = tf.constant([[[0.0, -1e9, 0.0], [0.0, 0.0, 0.0]]])  # query 0 skips key 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="suffix of the keys"):
        layer(x, None, None, memory=memory, memory_bias=holes, is_training=False)
    with pytest.raises(ValueError, match="one attention bias for all heads"):
        layer(x, None, None, memory=memory, memory_bias=tf.zeros([1, 2, 2, 3]),
              is_training=False)


@pytest.mark.usefixtures("both_layer_paths")
def test_wav2vec2_encoder_stack_matches_native():
    """The TransformerEncoder wav2vec2 builds (Wav2Vec2.new), from wav2vec2_toy."""
    from neurst.layers.encoders.transformer_encoder import TransformerEncoder
    p = get_hyper_parameters("wav2vec2_toy")["model.params"]
    kw = dict(num_layers=p["encoder_layers"], hidden_size=p["encoder_embed_dim"],
              num_attention_heads=p["encoder_attention_heads"],
              filter_size=p["encoder_filter_size"], ffn_activation=p["encoder_activation_fn"],
              post_normalize=not p["encoder_pre_norm"], layer_postprocess_epsilon=1e-5,
              name="encoder")
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=[3, 6, kw["hidden_size"]]), tf.float32)
    padding = tf.constant(1.0 - (np.arange(6)[None] < np.array(SRC_LEN)[:, None]), tf.float32)
    results = []
    for is_native in (True, False):
        with _context(is_native):
            enc = TransformerEncoder(**kw)
            enc(x, padding, is_training=False)
            if is_native:
                values = {v.name: v.numpy() + rng.normal(size=v.shape).astype(np.float32) * 0.1
                          for v in enc.weights}
            for v in enc.weights:
                v.assign(values[v.name])
            assert is_native != all(isinstance(layer, layers.NeurSTEncoderLayer)
                                    for layer in enc._stacking_layers)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = enc(x, padding, is_training=True)
                loss = tf.reduce_sum(y * tf.sin(y))
            variables = sorted(enc.weights, key=lambda v: v.name)
            results.append([y] + tape.gradient(loss, [x] + variables))
    for a, b in zip(*results):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=TOL, atol=TOL)


def readme_table():
    """README's "which NeurST models are accelerated" table, from DECISIONS."""
    rows = ["| NeurST model (hparams) | encoder | decoder | notes |", "|---|---|---|---|"]
    for name, (_, note) in DECISIONS.items():
        enc = "—" if name == "gpt2" else "ours"
        dec = "—" if name == "bert" else "ours"
        rows.append("| `%s` (`%s`) | %s | %s | %s |" % (name, HPARAMS[name], enc, dec, note))
    rows.append("| `wav2vec2` (`wav2vec2_toy`) | ours | — | %s |" % WAV2VEC2)
    return "\n".join(rows)


def test_readme_table_is_the_tests_decisions():
    import os
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    assert readme_table() in readme, "README's model table is stale; paste:\n" + readme_table()
