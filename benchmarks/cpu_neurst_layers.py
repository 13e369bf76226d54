"""NeurST's own Transformer layers vs ours swapped in (what a NeurST user
switches between), on CPU: fwd + bwd (input and every variable) in training
mode with NeurST's dropouts (0.1) on both sides, float32, transformer-base,
32 x 64 = 2048 tokens. Our encoder is measured both ways it can compute:
composed around TF's MatMul (what it does on a CPU) and as the whole-layer
op's CPU twin (what the GPU path runs, forced here).

    TF_USE_LEGACY_KERAS=1 PYTHONPATH=. python benchmarks/cpu_neurst_layers.py
"""
import argparse
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # NeurST is Keras-2 code
# Both sides are built explicitly below (NeurST's classes, and ours from
# them): no stack-level swap is wanted.
os.environ["LIGHTSEQ_TF_NEURST"] = "0"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lightseq_tf_neurst_hook  # noqa: E402

lightseq_tf_neurst_hook.install()
import tensorflow as tf  # noqa: E402
from neurst.layers import transformer_layers as tl  # noqa: E402

from cpu_ops import measure_and_save  # noqa: E402
from lightseq_tf.integrations.neurst import layers  # noqa: E402

B, L, H, HEADS, F, RATE = 32, 64, 512, 8, 2048, 0.1


def fwd_bwd(layer, args, kwargs, dy):
    layer(*args, **kwargs)  # build

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(args[0])
            y = layer(*args, **kwargs)
        return tape.gradient(y, [args[0]] + layer.trainable_weights, output_gradients=dy)

    return lambda: [g.numpy() for g in step()]


def cases():
    x = tf.random.normal([B, L, H])
    memory = tf.random.normal([B, L, H])
    dy = tf.random.normal([B, L, H])
    pad_bias = tf.zeros([B, L])
    causal = (1.0 - tf.linalg.band_part(tf.ones([L, L]), -1, 0))[None, None] * -1e9
    kw = dict(hidden_size=H, num_attention_heads=HEADS, filter_size=F,
              attention_dropout_rate=RATE, ffn_dropout_rate=RATE,
              layer_postprocess_dropout_rate=RATE)
    out = []
    for kind, native_cls, ours_cls, args, kwargs in (
            ("encoder", tl.TransformerEncoderLayer, layers.NeurSTEncoderLayer, (x, pad_bias),
             dict(is_training=True)),
            ("decoder", tl.TransformerDecoderLayer, layers.NeurSTDecoderLayer,
             (x, causal, None), dict(memory=memory, memory_bias=pad_bias, is_training=True))):
        native = native_cls(name="native_" + kind, **kw)
        ours = ours_cls.from_native(native_cls(name="ours_" + kind, **kw))
        out.append((kind + "_layer_base_neurst", [B, L, H], fwd_bwd(ours, args, kwargs, dy),
                    fwd_bwd(native, args, kwargs, dy)))
        if kind == "encoder":  # the whole-layer op's CPU twin, forced (GPU's path)
            whole = ours_cls.from_native(native_cls(name="whole_" + kind, **kw))
            whole.whole_layer_op = "always"
            out.append((kind + "_layer_base_neurst_whole_op", [B, L, H],
                        fwd_bwd(whole, args, kwargs, dy), fwd_bwd(native, args, kwargs, dy)))
    return out


def main(make_cases=cases, name="cpu_neurst_layers",
         title="NeurST layers on CPU, training mode (dropout 0.1 both): ours vs NeurST's"):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    measure_and_save(make_cases(), name, title, args.out, iters=10)


if __name__ == "__main__":
    main()
