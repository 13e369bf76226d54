"""A NeurST Transformer checkpoint directory as a `model.Transformer`.

What NeurST's trainer writes into --model_dir (and into its best/ and
best_avg/ subdirectories): model_configs.yml (model.class/params,
task.class/params with the two data pipelines) and name-based TF
checkpoints (`checkpoint`, ckpt-N.index, ckpt-N.data-*). Read here without
importing NeurST (its configs are YAML, its checkpoints TensorFlow's), so
the converter runs in any process; what each piece means follows NeurST
0.1.2's code, named below. A checkpoint written by an accelerated run (our
layers, via the hook) has the same variable names as a native one, so
both convert alike.

Mapped: neurst.models.transformer.Transformer (TransformerEncoder /
TransformerDecoder, pre- or post-LN, relu / gelu (tanh form) /
gelu_nonapprox / tanh FFN, dot-product attention), its modalities (shared
or separate source/target tables, softmax tied to the target table with
its bias or its own softmax_linear Dense), positions `sinusoids` (scaled by
sqrt(dim), NeurST's table written explicitly), `emb` (learned table, no
scale) or none; Seq2Seq's target_begin_of_sentence (bos or eos) and its
source EOS; TextDataPipeline vocabularies with NeurST's special symbols
(<UNK>, <SEQ_BEG>, <SEQ_END> appended as NeurST does). Anything else in the
config is refused with a message naming the key.
"""
import os

import numpy as np
import yaml

from lightseq_tf.export.ctranslate2.model import ACTIVATIONS, Stack, Transformer, \
    UnsupportedModelError

CONFIG_FILE = "model_configs.yml"  # neurst.utils.configurable.ModelConfigs
DEFAULT_MAX_POSITIONS = 1024

# neurst.utils.activations.get_activation -> CTranslate2's activation.
NEURST_ACTIVATIONS = {"relu": "relu", "gelu": "gelu_tanh", "gelu_approx": "gelu_tanh",
                      "gelu_nonapprox": "gelu", "tanh": "tanh"}
assert set(NEURST_ACTIVATIONS.values()) <= set(ACTIVATIONS)
# Names NeurST's registries resolve to the classes mapped here.
MODEL_CLASSES = ("Transformer", "transformer")
TASK_CLASSES = ("Seq2Seq", "seq2seq", "seq_to_seq")
PIPELINE_CLASSES = ("TextDataPipeline", "text_data_pipeline", "simple_text",
                    "TranscriptDataPipeline", "transcript_data_pipeline")
# Transformer.class_or_method_args(): every model.params key NeurST knows,
# with its default; those that only affect training are not read.
STACK_DEFAULTS = {"num_layers": None, "hidden_size": None, "num_attention_heads": None,
                  "filter_size": None, "ffn_activation": "relu", "attention_dropout_rate": 0.0,
                  "attention_type": "dot_product", "ffn_dropout_rate": 0.0,
                  "layer_postprocess_dropout_rate": 0.0, "post_normalize": False,
                  "layer_postprocess_epsilon": 1e-6}
MODEL_DEFAULTS = {"modality.share_source_target_embedding": False,
                  "modality.share_embedding_and_softmax_weights": False,
                  "modality.dim": None, "modality.source.dim": None, "modality.target.dim": None,
                  "modality.timing": None, "modality.source.timing": None,
                  "modality.target.timing": None, "encoder.attention_monotonic": None}
MODEL_DEFAULTS.update({"%s.%s" % (side, k): v for side in ("encoder", "decoder")
                       for k, v in STACK_DEFAULTS.items()})
PIPELINE_KEYS = {"vocab_path", "language", "tokenizer", "subtokenizer", "subtokenizer_codes",
                 "glossaries", "reverse_sequence", "bos_id", "eos_id", "unk_id", "pad_id",
                 "lowercase", "remove_punctuation"}


def _refuse(model_dir, what):
    raise UnsupportedModelError("NeurST model %s: %s" % (model_dir, what))


def read_configs(model_dir):
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isdir(model_dir):
        raise FileNotFoundError("NeurST model directory not found: %s" % model_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError("no %s in %s (NeurST's trainer writes it beside its checkpoints; "
                                "pass the directory that holds both)" % (CONFIG_FILE, model_dir))
    with open(path) as f:
        configs = yaml.safe_load(f)
    if not isinstance(configs, dict):
        raise UnsupportedModelError("%s is not a NeurST model config (a YAML mapping)" % path)
    return configs


def model_params(configs, model_dir):
    """model.params with NeurST's defaults filled in; refuses what cannot map."""
    cls = configs.get("model.class")
    if cls not in MODEL_CLASSES:
        _refuse(model_dir, "model.class %r is not supported (only NeurST's Transformer: %s)"
                % (cls, ", ".join(MODEL_CLASSES)))
    if configs.get("enable_quant"):
        _refuse(model_dir, "enable_quant (NeurST's quantization-aware training) is not supported")
    given = configs.get("model.params") or {}
    unknown = sorted(set(given) - set(MODEL_DEFAULTS))
    if unknown:
        _refuse(model_dir, "model.params %s not supported (unknown to NeurST's Transformer)"
                % ", ".join(unknown))
    params = dict(MODEL_DEFAULTS)
    params.update({k: v for k, v in given.items() if v is not None})
    return params


def _timing(value, model_dir, side):
    """None, 'sinusoids', 'sinusoids_variable' or 'emb'
    (neurst.layers.common_layers.PositionEmbeddingWrapper)."""
    if value is None:
        return None
    spec = {"timing": value} if isinstance(value, str) else dict(value)
    unknown = sorted(set(spec) - {"timing", "max_positions", "sinusoids_as_variable"})
    if unknown:
        _refuse(model_dir, "%s timing parameters %s not supported" % (side, ", ".join(unknown)))
    kind = spec.get("timing")
    if kind not in (None, "sinusoids", "emb"):
        _refuse(model_dir, "%s position timing %r is not supported (sinusoids, emb or none)"
                % (side, kind))
    if kind == "sinusoids" and spec.get("sinusoids_as_variable"):
        kind = "sinusoids_variable"
    return kind


def _pipeline(configs, key, model_dir):
    cls = configs.get("task.params", {}).get(key + ".class", "TextDataPipeline")
    if cls not in PIPELINE_CLASSES:
        _refuse(model_dir, "task.params %s.class %r is not supported (TextDataPipeline only)"
                % (key, cls))
    params = dict(configs.get("task.params", {}).get(key + ".params") or {})
    unknown = sorted(set(params) - PIPELINE_KEYS)
    if unknown:
        _refuse(model_dir, "task.params %s.params %s not supported" % (key, ", ".join(unknown)))
    if params.get("reverse_sequence"):
        _refuse(model_dir, "%s reverse_sequence is not supported (CTranslate2 reads sources in "
                           "order)" % key)
    if not params.get("vocab_path"):
        _refuse(model_dir, "task.params %s.params has no vocab_path" % key)
    return params


def resolve(path, model_dir):
    """A path from model_configs.yml: as written (absolute, or relative to the
    working directory, as NeurST reads it), else relative to model_dir."""
    if os.path.exists(path) or os.path.isabs(path):
        return path
    beside = os.path.join(model_dir, path)
    return beside if os.path.exists(beside) else path


def _unique(tokens, token):
    # neurst.data.text.vocab.Vocab.get_unique appends random digits; the
    # token's id is what matters, so a deterministic suffix stands in.
    while token in tokens:
        token += "0"
    return token


def vocabulary(params, model_dir, key):
    """(tokens, {"unk", "bos", "eos"}: token, path) exactly as NeurST's
    TextDataPipeline builds them: Vocab.load_tokens (first field of each
    line, quotes stripped, empty lines skipped), then <UNK>, <SEQ_BEG>,
    <SEQ_END> appended unless an *_id names a token of the file."""
    path = resolve(params["vocab_path"], model_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError("NeurST model %s: %s.params vocab_path %s not found"
                                % (model_dir, key, path))
    if path.endswith(".json"):
        _refuse(model_dir, "%s JSON (GPT-2) vocabulary %s is not supported" % (key, path))
    with open(path, encoding="utf-8") as f:
        lines = [line.strip("\n") for line in f]
    tokens = []
    for word in lines:
        if len(word) > 1 and word[0] == word[-1] and word[0] in "'\"":
            word = word[1:-1]
        elif word.strip():
            word = word.strip().split()[0]
        if word:
            tokens.append(word)
    special = {}
    for name, default in (("unk", "<UNK>"), ("bos", "<SEQ_BEG>"), ("eos", "<SEQ_END>")):
        i = params.get(name + "_id")
        special[name] = _unique(tokens, default) if i is None else tokens[i]
    for name in ("unk", "bos", "eos"):
        if special[name] not in tokens:
            tokens.append(special[name])
    return tokens, special, path


def latest_checkpoint(model_dir, checkpoint=None):
    import tensorflow as tf

    path = checkpoint or tf.train.latest_checkpoint(model_dir)
    if path is None:
        raise FileNotFoundError("no TensorFlow checkpoint in %s (no `checkpoint` file naming "
                                "one; pass checkpoint=...)" % model_dir)
    if not os.path.isfile(path + ".index"):
        raise FileNotFoundError("checkpoint %s not found (no %s.index)" % (path, path))
    return path


def read_checkpoint(path):
    """{variable name without NeurST's top scope: numpy array}. NeurST saves
    tf.train.Checkpoint(**{variable.name: variable}), so keys are the names
    with "/" written ".S" (neurst.utils.compat.wrapper_var_name), under the
    model's top scope (SequenceToSequence), which restoring ignores too."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(path)
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    weights = {}
    for key in reader.get_variable_to_shape_map():
        if not key.endswith(suffix) or key.startswith(("save_counter", "_CHECKPOINTABLE")):
            continue
        name = key[:-len(suffix)].replace(".S", "/")
        weights[name.split("/", 1)[1] if "/" in name else name] = reader.get_tensor(key)
    return weights


def neurst_sinusoids(length, channels):
    """PositionEmbeddingWrapper.add_sinusoids_timing_signal's signal for
    positions 0..length-1, in NeurST's own TF float32 ops and order (so the
    table equals what native NeurST adds, bit for bit)."""
    import math

    import tensorflow as tf

    position = tf.cast(tf.range(0, length), tf.float32)
    num_timescales = channels // 2
    log_timescale_increment = math.log(1.0e4 / 1.0) / (tf.cast(num_timescales, tf.float32) - 1)
    inv_timescales = 1.0 * tf.exp(tf.cast(tf.range(num_timescales), tf.float32)
                                  * -log_timescale_increment)
    scaled_time = tf.expand_dims(position, 1) * tf.expand_dims(inv_timescales, 0)
    signal = tf.concat([tf.sin(scaled_time), tf.cos(scaled_time)], axis=1)
    return tf.pad(signal, [[0, 0], [0, channels % 2]]).numpy()


class _Checkpoint:
    """A checkpoint's variables, each handed out once (what is left at the
    end was not mapped)."""

    def __init__(self, path):
        self.origin = "NeurST checkpoint %s" % path
        self.weights = read_checkpoint(path)

    def take(self, name):
        try:
            return self.weights.pop(name)
        except KeyError:
            raise UnsupportedModelError("%s has no variable %s (the config says %s)"
                                        % (self.origin, name, CONFIG_FILE)) from None

    def take_scope(self, prefix):
        """{name below prefix: value} of every variable under prefix."""
        found = {k[len(prefix):]: self.weights.pop(k) for k in list(self.weights)
                 if k.startswith(prefix)}
        if not found:
            raise UnsupportedModelError("%s has no variables under %s" % (self.origin, prefix))
        return found

    def check_all_taken(self):
        if self.weights:
            raise UnsupportedModelError("%s has variables this converter does not map: %s"
                                        % (self.origin, ", ".join(sorted(self.weights))))


def _stack_params(p, model_dir):
    """{"encoder": ..., "decoder": ...}: TransformerEncoder / TransformerDecoder's
    arguments, checked to be what CTranslate2 can run."""
    stacks = {}
    for side in ("encoder", "decoder"):
        s = {k: p["%s.%s" % (side, k)] for k in STACK_DEFAULTS}
        if s["attention_type"] != "dot_product":
            _refuse(model_dir, "%s.attention_type %r is not supported (dot_product only)"
                    % (side, s["attention_type"]))
        if s["ffn_activation"] not in NEURST_ACTIVATIONS:
            _refuse(model_dir, "%s.ffn_activation %r is not supported (supported: %s)"
                    % (side, s["ffn_activation"], ", ".join(NEURST_ACTIVATIONS)))
        for k in ("num_layers", "hidden_size", "num_attention_heads", "filter_size"):
            if s[k] is None:
                _refuse(model_dir, "model.params has no %s.%s" % (side, k))
        try:  # NeurST's flags cast; YAML reads "1e-6" (no dot) as a string
            s["layer_postprocess_epsilon"] = float(s["layer_postprocess_epsilon"])
        except ValueError:
            _refuse(model_dir, "%s.layer_postprocess_epsilon %r is not a number"
                    % (side, s["layer_postprocess_epsilon"]))
        stacks[side] = s
    if p["encoder.attention_monotonic"]:
        _refuse(model_dir, "encoder.attention_monotonic (a causal encoder) is not supported")
    enc, dec = stacks["encoder"], stacks["decoder"]
    dims = {"encoder.hidden_size": enc["hidden_size"], "decoder.hidden_size": dec["hidden_size"],
            "modality.source.dim": p["modality.source.dim"] or p["modality.dim"],
            "modality.target.dim": p["modality.target.dim"] or p["modality.dim"]}
    if len(set(dims.values())) != 1:
        _refuse(model_dir, "all widths must be equal, got %s"
                % ", ".join("%s %s" % kv for kv in dims.items()))
    if enc["layer_postprocess_epsilon"] != dec["layer_postprocess_epsilon"]:
        _refuse(model_dir, "encoder and decoder layer_postprocess_epsilon differ (%g, %g): "
                           "CTranslate2 has one LayerNorm epsilon"
                % (enc["layer_postprocess_epsilon"], dec["layer_postprocess_epsilon"]))
    return stacks


def _modality(ckpt, name, timing, softmax):
    """(table, softmax bias, learned position table) of one of
    EncoderDecoderModel.build_modalities' modalities."""
    scope = "%s_posenc_wrapper/%s" % (name, name) if timing else name
    table = ckpt.take("%s/%s/weights" % (scope, "shared" if softmax else "emb"))
    bias = ckpt.take("%s/shared/bias" % scope) if softmax else None
    learned = ckpt.take("%s_posenc_wrapper/position_embeddings/weights" % name) \
        if timing in ("emb", "sinusoids_variable") else None
    return table, bias, learned


def _stack_input(timing, learned, max_positions, hidden):
    """(scale, position table) as PositionEmbeddingWrapper.call adds them:
    sinusoids scale by sqrt(dim), learned tables ("emb") do not."""
    if timing is None:
        return 1.0, np.zeros([max_positions, hidden], np.float32)
    if timing == "emb":
        return 1.0, learned
    return np.sqrt(hidden), learned if timing == "sinusoids_variable" else \
        neurst_sinusoids(max_positions, hidden)


def _stack(ckpt, side, s, inputs):
    scope = "Transformer%s/" % side.capitalize()
    layers = [ckpt.take_scope(scope + "layer_%d/" % i) for i in range(s["num_layers"])]
    ln = None if s["post_normalize"] else \
        {k: ckpt.take(scope + "output_ln/" + k) for k in ("gamma", "beta")}
    scale, positions = inputs
    return Stack(layers=layers, num_heads=s["num_attention_heads"],
                 pre_norm=not s["post_normalize"],
                 activation=NEURST_ACTIVATIONS[s["ffn_activation"]], output_ln=ln,
                 embedding_scale=float(np.float32(scale)), position_encodings=positions)


def describe(model_dir, checkpoint=None, max_positions=DEFAULT_MAX_POSITIONS):
    """`model.Transformer` of a NeurST Transformer model directory.

    checkpoint: a checkpoint prefix (default: the directory's latest).
    max_positions: rows of the sinusoid table written for CTranslate2
    (source and target lengths it can decode; learned tables keep theirs).
    """
    model_dir = os.fspath(model_dir)
    configs = read_configs(model_dir)
    p = model_params(configs, model_dir)
    task = configs.get("task.class", "Seq2Seq")
    if task not in TASK_CLASSES:
        _refuse(model_dir, "task.class %r is not supported (sequence to sequence only: %s)"
                % (task, ", ".join(TASK_CLASSES)))
    begin = (configs.get("task.params") or {}).get("target_begin_of_sentence") or "bos"
    if begin not in ("bos", "eos"):
        _refuse(model_dir, "target_begin_of_sentence %r is not supported" % begin)
    stacks = _stack_params(p, model_dir)
    hidden = stacks["encoder"]["hidden_size"]
    timings = {side: _timing(p["modality.%s.timing" % side] or p["modality.timing"], model_dir,
                             side) for side in ("source", "target")}
    shared = p["modality.share_source_target_embedding"]
    tied = p["modality.share_embedding_and_softmax_weights"]
    if shared:  # the source modality is the target's, its timing included
        timings["source"] = timings["target"]
    if "sinusoids" in timings.values() and hidden < 4:
        _refuse(model_dir, "sinusoid positions need a width >= 4 (NeurST's formula divides by "
                           "width / 2 - 1)")

    vocabularies = {side: vocabulary(_pipeline(configs, key, model_dir), model_dir, key)
                    for side, key in (("source", "src_data_pipeline"),
                                      ("target", "trg_data_pipeline"))}
    src_special, trg_special = vocabularies["source"][1], vocabularies["target"][1]
    if src_special["eos"] != trg_special["eos"] or src_special["unk"] != trg_special["unk"]:
        _refuse(model_dir, "source and target name their end-of-sentence / unknown tokens "
                           "differently (%r/%r, %r/%r): CTranslate2 has one name for each"
                % (src_special["eos"], trg_special["eos"], src_special["unk"],
                   trg_special["unk"]))

    ckpt = _Checkpoint(latest_checkpoint(model_dir, checkpoint))
    trg_name = "shared_symbol_modality" if shared else "target_symbol_modality"
    trg_table, bias, trg_pos = _modality(ckpt, trg_name, timings["target"], tied)
    if shared:
        src_table, src_pos = trg_table, trg_pos
    else:
        src_table, _, src_pos = _modality(ckpt, "input_symbol_modality", timings["source"], False)
    if tied:
        output = trg_table
    else:
        output = ckpt.take("softmax_linear/kernel").T
        bias = ckpt.take("softmax_linear/bias")
    encoder = _stack(ckpt, "encoder", stacks["encoder"],
                     _stack_input(timings["source"], src_pos, max_positions, hidden))
    decoder = _stack(ckpt, "decoder", stacks["decoder"],
                     _stack_input(timings["target"], trg_pos, max_positions, hidden))
    ckpt.check_all_taken()
    for side, table in (("source", src_table), ("target", trg_table)):
        tokens, _, path = vocabularies[side]
        if table.shape[0] != len(tokens):
            raise UnsupportedModelError(
                "%s: the %s vocabulary %s has %d tokens with NeurST's special symbols, but the "
                "%s embedding has %d rows" % (ckpt.origin, side, path, len(tokens), side,
                                              table.shape[0]))
    # NeurST's encode() appends EOS to every source; decoding starts at BOS
    # (or EOS with target_begin_of_sentence: eos).
    return Transformer(
        encoder=encoder, decoder=decoder, source_embedding=src_table, target_embedding=trg_table,
        output_weight=output, output_bias=bias,
        epsilon=stacks["encoder"]["layer_postprocess_epsilon"],
        source_vocabulary=vocabularies["source"][0], target_vocabulary=vocabularies["target"][0],
        unk_token=trg_special["unk"], start_token=trg_special[begin],
        eos_token=trg_special["eos"], add_source_eos=True, origin=ckpt.origin)
