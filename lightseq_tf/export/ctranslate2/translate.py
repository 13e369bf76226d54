"""A NeurST model directory -> CTranslate2 -> translations of a text file,
with NeurST's own pre- and post-processing: the serving half of the demo.

    out = translate_neurst("run/model_dir", "dev.en", "run/ct2_int8", quantization="int8",
                           reference_file="dev.de")
    out["hypotheses"], out["sentences_per_second"], out["bleu"]
"""
import os
import time

from lightseq_tf.export.ctranslate2 import neurst as _neurst


def neurst_pipelines(model_dir):
    """NeurST's source and target data pipelines of a model directory, built by
    NeurST from its model_configs.yml (tokenizer, BPE, vocabulary), with the
    file paths resolved as the converter resolves them."""
    import lightseq_tf_neurst_hook  # NeurST 0.1.2 imports only through our compat hook
    lightseq_tf_neurst_hook.install()
    from neurst.data.data_pipelines import build_data_pipeline

    configs = _neurst.read_configs(model_dir)
    task = configs.get("task.params") or {}
    pipelines = []
    for key in ("src_data_pipeline", "trg_data_pipeline"):
        params = dict(_neurst._pipeline(configs, key, model_dir))
        for path_key in ("vocab_path", "subtokenizer_codes"):
            if params.get(path_key):
                params[path_key] = _neurst.resolve(params[path_key], model_dir)
        pipelines.append(build_data_pipeline(task.get(key + ".class", "TextDataPipeline"),
                                             **params))
    return pipelines


def translate_neurst(model_dir, source_file, output_dir, quantization="int8", beam_size=4,
                     length_penalty=0.6, batch_size=64, threads=0, max_decoding_length=256,
                     reference_file=None, checkpoint=None):
    """Converts the NeurST model in `model_dir` into `output_dir` (replaced if
    it exists) and translates `source_file` (raw text, one sentence per line)
    on the CPU.

    Pre-/post-processing is NeurST's own pipeline (Moses tokenizer, BPE,
    vocabulary; then BPE and Moses detokenizing), so hypotheses are what
    NeurST's SequenceGenerator writes for the same tokens. Decoding as
    NeurST's beam search does by default: <UNK> never generated, empty
    output allowed. length_penalty is CTranslate2's (log-probability /
    length ** alpha, EOS counted, applied after the search), not NeurST's
    GNMT ((5 + length) / 6) ** alpha: README (Export) says what that
    changes. threads: CTranslate2's
    intra_threads (0: its default). Returns {"hypotheses", "seconds" (the
    translate_batch call alone), "sentences_per_second", "bleu" (NeurST's
    sacreBLEU when reference_file is given, else None), "output_dir",
    "quantization", ...}.
    """
    import ctranslate2

    from lightseq_tf.export.ctranslate2 import convert_neurst

    convert_neurst(model_dir, output_dir, quantization=quantization, force=True,
                   checkpoint=checkpoint)
    src_dp, trg_dp = neurst_pipelines(model_dir)
    with open(source_file, encoding="utf-8") as f:
        sources = f.read().splitlines()
    tokens = [src_dp.preprocess(line).split() for line in sources]
    translator = ctranslate2.Translator(output_dir, device="cpu", compute_type="default",
                                        inter_threads=1, intra_threads=threads)
    t0 = time.perf_counter()
    results = translator.translate_batch(
        tokens, max_batch_size=batch_size, beam_size=beam_size, length_penalty=length_penalty,
        disable_unk=True, min_decoding_length=0, max_decoding_length=max_decoding_length,
        max_input_length=0)
    seconds = time.perf_counter() - t0
    hypotheses = [trg_dp.postprocess(" ".join(r.hypotheses[0])) for r in results]
    bleu = None
    if reference_file is not None:
        from neurst.metrics.bleu import BLEU

        with open(reference_file, encoding="utf-8") as f:
            references = f.read().splitlines()
        if len(references) != len(hypotheses):
            raise ValueError("%s has %d lines, %s %d" % (reference_file, len(references),
                                                         source_file, len(hypotheses)))
        bleu = float(BLEU(language=trg_dp.meta["language"]).call(hypotheses, references)
                     ["sacre_bleu"])
    return {"hypotheses": hypotheses, "seconds": seconds,
            "sentences_per_second": len(sources) / seconds if seconds > 0 else float("inf"),
            "bleu": bleu, "output_dir": os.path.abspath(output_dir),
            "quantization": quantization, "beam_size": beam_size,
            "length_penalty": length_penalty, "threads": threads, "sentences": len(sources)}
