"""CPU beam-4 decoding of a dev set, sentences/s: NeurST native (its own beam
search and layers), our LSTransformer.generate (the same weights),
CTranslate2 float32 and int8 (lightseq_tf.export.ctranslate2), with the same
threads, batches and length limit, and each engine's BLEU.

    PYTHONPATH=. python benchmarks/cpu_ctranslate2.py --model_dir DIR --source dev.en \\
        --reference dev.de

DIR: a NeurST Transformer model directory, e.g. the README demo's trained
model (build/neurst_demo/accelerated after build_tools/neurst_demo.sh).
Every engine decodes the dev set in the same batches of --batch sentences
(file order), capped at the batch's longest source + 10 tokens (NeurST's
extra_decode_length as the demo sets it): one batch to warm up (tracing),
then the whole set --repeats times (median). Length penalty 0.6 (NeurST's
default) in each engine's own form: GNMT's ((5 + n) / 6) ** 0.6 inside the
search for NeurST and ours, log-probability / n ** 0.6 after the search for
CTranslate2, which also runs with 0 and 1 (its default) to show what the
form changes in BLEU. <UNK> is never generated (NeurST's default), except
by ours, which has no such switch. Threads: TensorFlow intra-op --threads,
inter-op 1; CTranslate2 intra_threads --threads, one translation at a time.
"""
import argparse
import os
import sys
import tempfile
import time

# NeurST is Keras-2 code: select tf_keras (our hook does) before TensorFlow
# loads, with NeurST's own layers (LIGHTSEQ_TF_NEURST=0: this is its native run).
os.environ.setdefault("LIGHTSEQ_TF_NEURST", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import lightseq_tf_neurst_hook  # noqa: E402

lightseq_tf_neurst_hook.install()
import neurst  # noqa: E402,F401

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import chart, save, table  # noqa: E402

ALPHA = 0.6
EXTRA = 10


def batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def timed(decode, batch_list, repeats):
    """decode(batch) -> hypotheses; one warm-up batch (tracing), then the whole
    set `repeats` times: (hypotheses, median seconds)."""
    decode(batch_list[0])
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [h for b in batch_list for h in decode(b)]
        seconds.append(time.perf_counter() - t0)
    return out, float(np.median(seconds))


def neurst_native(model_dir, src_dp, trg_dp):
    from neurst.layers.search import build_search_layer
    from neurst.tasks import build_task
    from neurst.utils import compat
    from neurst.utils.checkpoints import restore_checkpoint_if_possible
    from neurst.utils.configurable import ModelConfigs

    configs = ModelConfigs.load(model_dir)
    task = build_task(configs)
    model = task.build_model(configs)
    if not restore_checkpoint_if_possible(model, model_dir):
        sys.exit("no checkpoint restored from %s" % model_dir)
    search = build_search_layer({"class": "beam_search", "params": {
        "beam_size": 4, "length_penalty": ALPHA, "extra_decode_length": EXTRA,
        "maximum_decode_length": 1024}})
    search.set_model(model)
    generate = tf.function(
        lambda feature: search(task.example_to_input({"feature": feature},
                                                     compat.ModeKeys.INFER))[0],
        input_signature=[tf.TensorSpec([None, None], tf.int64)])
    eos = src_dp.meta["eos_id"]

    def decode(batch):
        width = max(map(len, batch))
        ids = generate(tf.constant([b + [eos] * (width - len(b)) for b in batch], tf.int64))
        return [trg_dp.decode(list(row)) for row in ids.numpy()]
    return decode


class _WithOutputBias:
    """Mixed into LSTransformer: NeurST's softmax has a bias, ours does not."""

    def project(self, x):
        return super().project(x) + tf.cast(self.output_bias, x.dtype)


def lstransformer(model_dir, trg_dp, max_len):
    """Our LSTransformer with the NeurST model's weights (read by the
    converter), plus one extra id P as padding: its embedding rows are zero
    (LSTransformer's padding) and its output bias -1e9, so every NeurST id,
    EOS included, keeps its meaning and P is never generated."""
    import lightseq_tf
    from lightseq_tf.export.ctranslate2 import neurst as reader

    m = reader.describe(model_dir)
    enc, dec = m.encoder, m.decoder
    names = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_tanh"}
    if enc.num_heads != dec.num_heads or enc.pre_norm != dec.pre_norm or \
            enc.activation != dec.activation or enc.activation not in names:
        sys.exit("LSTransformer has one head count, norm placement and activation for both "
                 "stacks; this model differs")
    h = m.source_embedding.shape[1]
    pad = max(m.source_embedding.shape[0], m.target_embedding.shape[0])
    shared = m.source_embedding is m.target_embedding
    tied = m.output_weight is m.target_embedding

    def padded(table):
        return np.concatenate([table, np.zeros([pad + 1 - len(table), h], np.float32)])

    config = lightseq_tf.LSTransformer.get_config(
        max_batch_tokens=65536, max_seq_len=max_len, vocab_size=pad + 1, padding_idx=pad,
        num_encoder_layer=len(enc.layers), num_decoder_layer=len(dec.layers), hidden_size=h,
        intermediate_size=enc.layers[0]["ffn_prepost_wrapper/ffn/dense1/kernel"].shape[1],
        nhead=enc.num_heads, attn_prob_dropout_ratio=0.0, activation_dropout_ratio=0.0,
        hidden_dropout_ratio=0.0, pre_layer_norm=enc.pre_norm, activation_fn=names[enc.activation],
        share_embeddings=shared, tie_output=tied, eos_idx=trg_dp.meta["eos_id"],
        bos_idx=trg_dp.tokens.index(m.start_token))
    cls = type("NeurSTLSTransformer", (_WithOutputBias, lightseq_tf.LSTransformer), {})
    model = cls(config, epsilon=m.epsilon)
    bias = np.full([pad + 1], -1e9, np.float32)
    bias[:len(m.target_embedding)] = 0.0 if m.output_bias is None else m.output_bias
    model.output_bias = tf.constant(bias)
    model((tf.ones([1, 2], tf.int32), tf.ones([1, 2], tf.int32)))
    for layers, stack in ((model.encoder_layers, enc), (model.decoder_layers, dec)):
        for layer, weights in zip(layers, stack.layers):
            for name, v in layer.named_weights().items():
                v.assign(weights[name])
    for ln, stack in ((model.encoder_output_ln, enc), (model.decoder_output_ln, dec)):
        if ln is not None:
            ln.gamma.assign(stack.output_ln["gamma"])
            ln.beta.assign(stack.output_ln["beta"])
    model.src_embedding.embeddings.assign(padded(m.source_embedding))
    if not shared:
        model.tgt_embedding.embeddings.assign(padded(m.target_embedding))
    if not tied:
        model.output_projection.kernel.assign(padded(m.output_weight).T)
    generate = tf.function(
        lambda src, n: model.generate(src, beam_size=4, max_len=n, length_penalty=ALPHA)[0],
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32)])
    eos = trg_dp.meta["eos_id"]

    def decode(batch):
        width = max(map(len, batch))
        ids = generate(tf.constant([b + [pad] * (width - len(b)) for b in batch], tf.int32),
                       tf.constant(width + EXTRA))
        return [trg_dp.decode([t for t in row if t != pad] or [eos]) for row in ids.numpy()]
    return decode


def ctranslate2_engine(path, threads, src_dp, trg_dp, alpha):
    import ctranslate2

    translator = ctranslate2.Translator(path, device="cpu", inter_threads=1,
                                        intra_threads=threads)

    def decode(batch):
        tokens = [src_dp.tokens_of(ids) for ids in batch]
        results = translator.translate_batch(
            tokens, beam_size=4, length_penalty=alpha, disable_unk=True, min_decoding_length=0,
            max_decoding_length=max(map(len, batch)) + EXTRA, max_input_length=0)
        return [trg_dp.postprocess(" ".join(r.hypotheses[0])) for r in results]
    return decode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model_dir", default="build/neurst_demo/accelerated")
    ap.add_argument("--source", default="build/neurst_demo/data/dev.en")
    ap.add_argument("--reference", default="build/neurst_demo/data/dev.de")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes (median)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    for path in (args.model_dir, args.source, args.reference):
        if not os.path.exists(path):
            sys.exit("%s not found: train the README demo's model first (bash "
                     "build_tools/neurst_demo.sh) or pass --model_dir/--source/--reference" % path)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    import ctranslate2
    from neurst.metrics.bleu import BLEU

    from lightseq_tf.export import ctranslate2 as export
    from lightseq_tf.export.ctranslate2.translate import neurst_pipelines

    src_dp, trg_dp = neurst_pipelines(args.model_dir)
    src_dp.tokens_of = lambda ids: [src_dp.tokens[i] for i in ids[:-1]]  # without NeurST's EOS
    with open(args.source, encoding="utf-8") as f:
        sources = [src_dp.encode(line) for line in f.read().splitlines()]  # ids + EOS
    with open(args.reference, encoding="utf-8") as f:
        references = f.read().splitlines()
    batch_list = batches(sources, args.batch)
    bleu = BLEU(language=trg_dp.meta["language"])
    max_len = max(map(len, sources)) + EXTRA
    unk = sum(src_dp.meta["unk_id"] in s for s in sources)

    work = tempfile.mkdtemp(prefix="cpu_ctranslate2_")
    engines = [("NeurST native", neurst_native(args.model_dir, src_dp, trg_dp), ALPHA),
               ("LSTransformer.generate", lstransformer(args.model_dir, trg_dp, max_len), ALPHA)]
    for q in ("float32", "int8"):
        path = export.convert_neurst(args.model_dir, os.path.join(work, q), quantization=q)
        engines.append(("CTranslate2 %s" % q,
                        ctranslate2_engine(path, args.threads, src_dp, trg_dp, ALPHA), ALPHA))
        if q == "float32":
            for alpha in (0.0, 1.0):
                engines.append(("CTranslate2 float32, length penalty %g" % alpha,
                                ctranslate2_engine(path, args.threads, src_dp, trg_dp, alpha),
                                alpha))
    rows, neurst_hyps = [], None
    for name, decode, alpha in engines:
        hyps, seconds = timed(decode, batch_list, args.repeats)
        neurst_hyps = neurst_hyps or hyps
        rows.append({"engine": name, "sentences": len(hyps), "seconds": seconds,
                     "sentences_per_second": len(hyps) / seconds,
                     "bleu": bleu.call(hyps, references)["sacre_bleu"], "length_penalty": alpha,
                     "beam": 4, "batch": args.batch, "threads": args.threads,
                     "device": "CPU, TF %s, CTranslate2 %s" % (tf.__version__,
                                                              ctranslate2.__version__)})
        rows[-1]["hypotheses_equal_to_neurst"] = sum(a == b for a, b in zip(hyps, neurst_hyps))
        rows[-1]["load_average_1min"] = os.getloadavg()[0]  # a shared machine: other work ran
        print(table(rows[-1:], ["engine", "sentences_per_second", "bleu",
                                "hypotheses_equal_to_neurst"]), flush=True)
    base = rows[0]["sentences_per_second"]
    for r in rows:
        r["speedup_vs_neurst"] = r["sentences_per_second"] / base
    print("\n%d dev sentences (%d with an <UNK> source token), model %s" % (
        len(sources), unk, os.path.abspath(args.model_dir)))
    print(table(rows, ["engine", "sentences_per_second", "speedup_vs_neurst", "bleu",
                       "hypotheses_equal_to_neurst", "seconds"]))
    save(rows, "cpu_ctranslate2", args.out)
    try:
        chart([r for r in rows if r["length_penalty"] == ALPHA], "cpu_ctranslate2", args.out,
              "Beam-4 decoding of %d dev sentences, CPU x%d threads (higher is better)"
              % (len(sources), args.threads), keys=["sentences_per_second"],
              label=lambda r: r["engine"], ylabel="sentences / s")
    except ImportError:
        print("(matplotlib not installed: no PNG)")


if __name__ == "__main__":
    main()
