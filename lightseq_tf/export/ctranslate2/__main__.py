"""python -m lightseq_tf.export.ctranslate2 --model_dir MODEL --output_dir OUT
       [--quantization int8|int8_float16|float16|float32]

MODEL: a NeurST model directory (model_configs.yml + checkpoints), or an
LSTransformer saved by Keras (a .keras file, or a tf_keras SavedModel
directory), which also needs --vocabulary (its tokens by id).
"""
import argparse
import os
import sys

from lightseq_tf.export import ctranslate2 as export


def _is_keras_save(path):
    return os.path.isfile(path) and path.endswith(".keras") or \
        os.path.isfile(os.path.join(path, "saved_model.pb"))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lightseq_tf.export.ctranslate2",
        description="Convert a NeurST Transformer model directory or a saved LSTransformer "
                    "into a CTranslate2 model directory.")
    parser.add_argument("--model_dir", required=True,
                        help="NeurST model directory, or an LSTransformer .keras file / tf_keras "
                             "SavedModel directory")
    parser.add_argument("--output_dir", required=True, help="CTranslate2 model directory to write")
    parser.add_argument("--quantization", default="float32",
                        choices=("int8", "int8_float16", "float16", "float32"),
                        help="weight type of the converted model (default: float32)")
    parser.add_argument("--force", action="store_true", help="replace an existing output_dir")
    neurst = parser.add_argument_group("NeurST model directories")
    neurst.add_argument("--checkpoint", help="checkpoint prefix (default: the latest)")
    neurst.add_argument("--max_positions", type=int, default=1024,
                        help="longest source/target the converted model takes (sinusoid rows)")
    ls = parser.add_argument_group("LSTransformer saves")
    ls.add_argument("--vocabulary", help="file of the target tokens by id, one per line (also "
                                         "the source's unless --source_vocabulary)")
    ls.add_argument("--source_vocabulary", help="file of the source tokens by id")
    ls.add_argument("--unk_token", help="token unknown input maps to (default: <unk> if present, "
                                        "else the padding token)")
    ls.add_argument("--add_source_eos", action="store_true",
                    help="CTranslate2 appends the eos token to every source")
    args = parser.parse_args(argv)
    try:
        if _is_keras_save(args.model_dir):
            if not args.vocabulary:
                parser.error("an LSTransformer save needs --vocabulary")
            out = export.convert_lstransformer(
                args.model_dir, args.output_dir, args.vocabulary, quantization=args.quantization,
                force=args.force, source_vocabulary=args.source_vocabulary,
                unk_token=args.unk_token, add_source_eos=args.add_source_eos)
        else:
            out = export.convert_neurst(args.model_dir, args.output_dir,
                                        quantization=args.quantization, force=args.force,
                                        checkpoint=args.checkpoint,
                                        max_positions=args.max_positions)
    except (export.UnsupportedModelError, FileNotFoundError, RuntimeError, ValueError) as e:
        sys.exit("error: %s" % e)
    print("CTranslate2 model (%s) written to %s" % (args.quantization, out))
    return out


if __name__ == "__main__":
    main()
