"""Export to CTranslate2: NeurST Transformer checkpoints and LSTransformer
models become CTranslate2 model directories (float32, float16, int8,
int8_float16), built through CTranslate2's public spec API
(ctranslate2.specs.TransformerSpec + ctranslate2.converters.Converter).

    python -m lightseq_tf.export.ctranslate2 --model_dir MODEL --output_dir CT2 \\
        --quantization int8

    from lightseq_tf.export import ctranslate2 as ct2_export
    ct2_export.convert_neurst("run/model_dir", "ct2_model", quantization="int8")
    ct2_export.convert_lstransformer(model, "ct2_model", vocabulary=tokens)

In float32 the converted model computes our / NeurST's function: greedy
decoding gives the same tokens (tests/cpu/test_ctranslate2_export.py,
tests/neurst/test_ctranslate2_neurst.py). Translate with CTranslate2 as
usual (ctranslate2.Translator(dir).translate_batch(tokens, beam_size=...,
length_penalty=..., min_decoding_length=0)); NeurST models take NeurST's
subword tokens and get NeurST's source EOS appended by CTranslate2.
`translate_neurst` does the whole round for a NeurST model directory.
Anything that cannot be mapped is refused by UnsupportedModelError naming it.
Needs the `ctranslate2` package (pip install 'lightseq-tf[ctranslate2]').
"""
try:
    from ctranslate2.converters.converter import Converter as _Converter
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("lightseq_tf.export.ctranslate2 needs the ctranslate2 package: "
                      "pip install 'lightseq-tf[ctranslate2]' (or pip install ctranslate2)") from e

from lightseq_tf.export.ctranslate2 import lstransformer as _lstransformer
from lightseq_tf.export.ctranslate2 import neurst as _neurst
from lightseq_tf.export.ctranslate2.model import UnsupportedModelError, to_spec
from lightseq_tf.export.ctranslate2.translate import translate_neurst

QUANTIZATIONS = ("float32", "float16", "int8", "int8_float16")  # what the CLI offers


class NeurSTConverter(_Converter):
    """A NeurST Transformer model directory (model_configs.yml + checkpoints +
    the vocabularies its data pipelines name). checkpoint: a checkpoint
    prefix (default: the directory's latest); max_positions: longest source
    or target the converted model takes with sinusoid positions."""

    def __init__(self, model_dir, checkpoint=None, max_positions=_neurst.DEFAULT_MAX_POSITIONS):
        self.model_dir, self.checkpoint, self.max_positions = model_dir, checkpoint, max_positions

    def _load(self):
        return to_spec(_neurst.describe(self.model_dir, self.checkpoint, self.max_positions))


class LSTransformerConverter(_Converter):
    """An LSTransformer, built (in memory) or a path Keras saved it to (a
    .keras file; a tf_keras SavedModel directory). vocabulary: the target's
    tokens by id (list, or a file of one token per line), also the source's
    unless source_vocabulary is given. See lstransformer.describe for
    unk_token and add_source_eos."""

    def __init__(self, model, vocabulary, source_vocabulary=None, unk_token=None,
                 add_source_eos=False):
        self.model, self.vocabulary, self.source_vocabulary = model, vocabulary, source_vocabulary
        self.unk_token, self.add_source_eos = unk_token, add_source_eos

    def _load(self):
        model = self.model
        if not hasattr(model, "config"):
            model = _lstransformer.load_lstransformer(model)
        return to_spec(_lstransformer.describe(model, self.vocabulary, self.source_vocabulary,
                                               self.unk_token, self.add_source_eos))


def convert_neurst(model_dir, output_dir, quantization=None, force=False, **kwargs):
    """NeurSTConverter(model_dir, **kwargs).convert(...); returns output_dir."""
    return NeurSTConverter(model_dir, **kwargs).convert(output_dir, quantization=quantization,
                                                        force=force)


def convert_lstransformer(model, output_dir, vocabulary, quantization=None, force=False,
                          **kwargs):
    """LSTransformerConverter(model, vocabulary, **kwargs).convert(...); returns output_dir."""
    return LSTransformerConverter(model, vocabulary, **kwargs).convert(
        output_dir, quantization=quantization, force=force)


__all__ = ["NeurSTConverter", "LSTransformerConverter", "convert_neurst",
           "convert_lstransformer", "translate_neurst", "UnsupportedModelError", "QUANTIZATIONS"]
