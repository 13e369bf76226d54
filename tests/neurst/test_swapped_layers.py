"""The swapped NeurST stacks against NeurST's own (built under swaps.native()),
with the same weights: variable names, outputs and gradients, incremental
decoding (dynamic and static cache, beam reorder; the layer tests on both of
our layers' paths: whole-layer and decoding-step ops, and composed), the
criterion, fallbacks and bad input. The reference is NeurST's real code, run on TF 2.21 through
our compat mappings."""
import contextlib

import numpy as np
import pytest
import tensorflow as tf
from neurst.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropy
from neurst.layers.decoders.transformer_decoder import TransformerDecoder
from neurst.layers.encoders.transformer_encoder import TransformerEncoder

from lightseq_tf.integrations.neurst import layers, swaps

H, HEADS, F = 32, 4, 64
# float32: the same math in another order (fused LayerNorm / softmax, fp32
# accumulation in both): observed differences ~1e-6; 2e-5 leaves room for
# different summation orders, not for a wrong mask or a missing term.
TOL = 2e-5
# Source lengths 5 and 3 of 5 (right padding, as NeurST pads).
PAD = tf.constant([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], tf.float32)


def stacks(native, post_normalize=False, activation="relu", **kw):
    kw = dict(num_layers=2, hidden_size=H, num_attention_heads=HEADS, filter_size=F,
              ffn_activation=activation, post_normalize=post_normalize, **kw)
    return (TransformerEncoder(name="enc", **kw), TransformerDecoder(name="dec", **kw))


def run(enc, dec, x, y, native, training=False, decode=False):
    with swaps.native() if native else contextlib.nullcontext():
        memory = enc(x, PAD, is_training=training)
        cache = dec.create_decoding_internal_cache(memory, PAD, is_inference=decode)
        return memory, dec(y, cache, is_training=training), cache


def pair(**kw):
    """Native and accelerated stacks with the native weights copied over by name."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=[2, 5, H]), tf.float32)
    y = tf.constant(rng.normal(size=[2, 4, H]), tf.float32)
    ne, nd = stacks(True, **kw)
    oe, od = stacks(False, **kw)
    run(ne, nd, x, y, True)
    run(oe, od, x, y, False)
    by_name = {v.name: v for v in oe.weights + od.weights}
    for v in ne.weights + nd.weights:  # random LN parameters too, so they matter
        # (seeded: an unseeded draw made a different case each run)
        v.assign(v + rng.normal(size=v.shape, scale=0.1).astype(np.float32))
        by_name[v.name].assign(v)
    return (ne, nd), (oe, od), x, y


def test_accelerated_layers_are_ours_with_neurst_names():
    (ne, nd), (oe, od), _, _ = pair()
    assert all(isinstance(layer, layers.NeurSTEncoderLayer) for layer in oe._stacking_layers)
    assert all(isinstance(layer, layers.NeurSTDecoderLayer) for layer in od._stacking_layers)
    assert isinstance(oe._output_norm_layer, layers.LayerNormalization)
    assert not any(isinstance(layer, layers.NeurSTEncoderLayer) for layer in ne._stacking_layers)
    native = sorted((v.name, tuple(v.shape)) for v in ne.weights + nd.weights)
    ours = sorted((v.name, tuple(v.shape)) for v in oe.weights + od.weights)
    # 12 per encoder layer, 20 per decoder layer, 2 per output LayerNorm
    assert native == ours and len(native) == 2 * 12 + 2 * 20 + 2 * 2


@pytest.mark.usefixtures("both_layer_paths")
@pytest.mark.parametrize("post_normalize", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_nonapprox"])
def test_forward_and_gradients_match_neurst(post_normalize, activation):
    native, ours, x, y = pair(post_normalize=post_normalize, activation=activation)
    results = []
    for (enc, dec), is_native in ((native, True), (ours, False)):
        with tf.GradientTape() as tape:
            tape.watch([x, y])
            memory, out, _ = run(enc, dec, x, y, is_native)
            loss = tf.reduce_sum(out * tf.sin(out)) + tf.reduce_sum(memory ** 2)
        variables = sorted(enc.weights + dec.weights, key=lambda v: v.name)
        grads = tape.gradient(loss, [x, y] + variables)
        results.append([memory, out] + grads)
    for a, b in zip(*results):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=TOL, atol=TOL)


@pytest.mark.usefixtures("both_layer_paths")
def test_beam_search_style_decoding_matches_neurst():
    """NeurST's incremental protocol (its TransformerDecoder.call with
    decoding_states): step by step with a tiled, beam-reordered cache."""
    native, ours, x, y = pair()
    outs = []
    for (enc, dec), is_native in ((native, True), (ours, False)):
        with swaps.native() if is_native else contextlib.nullcontext():
            memory = enc(x, PAD, is_training=False)
            cache = dec.create_decoding_internal_cache(memory, PAD, is_inference=True)
            steps = []
            for t in range(y.shape[1]):
                steps.append(dec(y[:, t], cache, is_training=False))
                # a beam reorder: swap the two sentences' states and back
                cache["decoding_states"] = tf.nest.map_structure(
                    lambda s: tf.gather(s, [1, 0]), tf.nest.map_structure(
                        lambda s: tf.gather(s, [1, 0]), cache["decoding_states"]))
            outs.append(tf.stack(steps, axis=1))
    np.testing.assert_allclose(outs[1].numpy(), outs[0].numpy(), rtol=TOL, atol=TOL)
    full = run(*ours, x, y, False)[1]  # incremental == teacher-forced full forward
    np.testing.assert_allclose(outs[1].numpy(), full.numpy(), rtol=TOL, atol=TOL)


@pytest.mark.usefixtures("both_layer_paths")
def test_static_cache_decoding_matches_neurst():
    native, ours, x, y = pair()
    outs = []
    for (enc, dec), is_native in ((native, True), (ours, False)):
        with swaps.native() if is_native else contextlib.nullcontext():
            memory = enc(x, PAD, is_training=False)
            cache = dec.create_decoding_internal_cache(memory, PAD, is_inference=True,
                                                       decode_padded_length=6)
            outs.append(tf.stack([dec(y[:, t], cache, is_training=False, decode_loop_step=t)
                                  for t in range(y.shape[1])], axis=1))
    np.testing.assert_allclose(outs[1].numpy(), outs[0].numpy(), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_criterion_matches_neurst(label_smoothing):
    crit = LabelSmoothedCrossEntropy({"label_smoothing": label_smoothing})
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(size=[3, 5, 11]) * 3, tf.float32)
    inp = {"trg": tf.constant(rng.integers(0, 11, size=[3, 5]), tf.int64),
           "trg_length": tf.constant([5, 2, 4])}
    results = []
    for native in (True, False):
        with swaps.native() if native else contextlib.nullcontext():
            with tf.GradientTape() as tape:
                tape.watch(logits)
                nll_sum, n_samples, n_tokens = crit(inp, logits)
                loss = crit.reduce_loss(inp, logits)
            results.append([nll_sum, n_samples, n_tokens, loss, tape.gradient(loss, logits)])
    for a, b in zip(*results):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)


def test_unsupported_configurations_stay_native():
    enc = TransformerEncoder(num_layers=1, hidden_size=H, num_attention_heads=HEADS,
                             filter_size=F, ffn_activation="tanh")
    dec_partial = TransformerDecoder(num_layers=2, hidden_size=H, num_attention_heads=HEADS,
                                     filter_size=F, ffn_activation="tanh")
    x = tf.zeros([2, 5, H])
    enc(x, PAD, is_training=False)
    dec_partial(tf.zeros([2, 3, H]), dec_partial.create_decoding_internal_cache(x, PAD),
                is_training=False)
    assert not isinstance(enc._stacking_layers[0], layers.NeurSTEncoderLayer)
    assert not any(isinstance(layer, layers.NeurSTDecoderLayer)
                   for layer in dec_partial._stacking_layers)


def test_left_padding_and_per_head_biases_are_rejected():
    (_, _), (oe, _), x, _ = pair()
    left = tf.constant([[0, 0, 0, 0, 0], [1, 1, 0, 0, 0]], tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="right end"):
        oe(x, left, is_training=False)
    layer = oe._stacking_layers[0]
    with pytest.raises(ValueError, match="one attention bias for all heads"):
        layer(x, tf.zeros([2, HEADS, 5, 5]), is_training=False)
    with pytest.raises(ValueError, match="rank 2, 3 or 4"):
        layer(x, tf.zeros([2, 1, 1, 5, 5]), is_training=False)


def test_adam_builds_lsadam():
    from neurst.optimizers import build_optimizer

    from lightseq_tf.optimizers import LSAdam
    for name in ("adam", "Adam"):
        opt = build_optimizer({"optimizer.class": name,
                               "optimizer.params": {"epsilon": 1e-9, "beta_1": 0.9}})
        assert type(opt) is LSAdam and opt.epsilon == 1e-9
        opt._set_hyper("learning_rate", 0.5)  # what NeurST's training_utils does


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_public_layers_load_from_and_copy_to_native_neurst_layers(kind):
    """lightseq_tf.LSTransformer{Encoder,Decoder}Layer <-> NeurST's own layer."""
    import lightseq_tf
    from neurst.layers import transformer_layers as tl
    native_cls = tl.TransformerEncoderLayer if kind == "encoder" else tl.TransformerDecoderLayer
    ours_cls = (lightseq_tf.LSTransformerEncoderLayer if kind == "encoder"
                else lightseq_tf.LSTransformerDecoderLayer)
    native = native_cls(hidden_size=H, num_attention_heads=HEADS, filter_size=F, name="native")
    ours = ours_cls(layers._config(native), name="ours")
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=[2, 5, H]), tf.float32)
    memory = tf.constant(rng.normal(size=[2, 5, H]), tf.float32)
    pad_bias = PAD * -1e9

    def native_out():
        if kind == "encoder":
            return native(x, pad_bias, is_training=False)
        causal = (1.0 - tf.linalg.band_part(tf.ones([5, 5]), -1, 0))[None, None] * -1e9
        return native(x, causal, None, memory=memory, memory_bias=pad_bias, is_training=False)

    def ours_out():
        lengths = tf.constant([5, 3])
        if kind == "encoder":
            return ours(x, lengths=lengths)
        return ours(x, memory=memory, memory_lengths=lengths)

    native_out(), ours_out()
    for v in native.weights:
        v.assign(v + tf.random.normal(v.shape, stddev=0.1))
    ours.load_weights_from(native)
    np.testing.assert_allclose(ours_out().numpy(), native_out().numpy(), rtol=TOL, atol=TOL)
    for v in ours.weights:
        v.assign(v * 0.9)
    ours.copy_weights_to(native)
    np.testing.assert_allclose(native_out().numpy(), ours_out().numpy(), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("ids_shape, time", [((3, 7), None), ((3, 7), 4), ((3,), 5)])
def test_sinusoid_embedding_matches_neurst(ids_shape, time):
    """NeurST's word embedding + sqrt(dim) scale + sinusoids (training: a
    [batch, length] block from `time`; decoding: one [batch] step at `time`),
    values and table gradient, through the model's own modality builder."""
    from neurst.models.transformer import Transformer
    rng = np.random.default_rng(4)
    ids = tf.constant(rng.integers(0, 50, size=ids_shape), tf.int64)
    values = tf.constant(rng.normal(size=[50, H]), tf.float32)
    outs = []
    for native in (True, False):
        with swaps.native() if native else contextlib.nullcontext():
            modality = Transformer.build_modality(vocab_size=50, emb_dim=H, name="m",
                                                  timing="sinusoids")
            modality(ids, time=time)
            table = modality.embedding_layer._shared_weights
            table.assign(values)
            with tf.GradientTape() as tape:
                y = modality(ids, time=time)
                loss = tf.reduce_sum(y * tf.cos(y))
            outs.append((y, tf.convert_to_tensor(tape.gradient(loss, table)), table.name))
            graph = tf.function(lambda: modality(ids, time=time)).get_concrete_function().graph
            assert native != any(op.type == "LightseqEmbedding" for op in graph.get_operations())
    (y_n, g_n, name_n), (y_o, g_o, name_o) = outs
    assert name_n == name_o == "m_posenc_wrapper/m/emb/weights:0"
    np.testing.assert_allclose(y_o.numpy(), y_n.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_o.numpy(), g_n.numpy(), rtol=1e-5, atol=1e-5)
