"""The NeurST layer forms the model zoo adds (tests/neurst/test_model_zoo.py),
ours vs NeurST's own, on CPU: fwd + bwd (input and every variable), training
mode with NeurST's dropouts (0.1) on both sides, float32, transformer-base,
32 x 64 = 2048 tokens, right padding (lengths 33..64):
- a monotonic encoder layer (wait-k's): causal-and-padding bias [B, 1, L, L];
- a wait-k decoder layer (k = 3): lagged memory bias [B, L, S];
- a decoder layer without cross-attention (GPT-2's).
Ours take the biases as a key length per query, through the fused softmax
with the queries folded into its batch axis (composed around TF's MatMul).

    TF_USE_LEGACY_KERAS=1 PYTHONPATH=. python benchmarks/cpu_neurst_zoo_layers.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_neurst_layers import B, F, H, HEADS, L, RATE, fwd_bwd, main  # noqa: E402  (arms the hook)

import tensorflow as tf  # noqa: E402
from neurst.layers import layer_utils  # noqa: E402
from neurst.layers import transformer_layers as tl  # noqa: E402

from lightseq_tf.integrations.neurst import layers  # noqa: E402

WAIT_K = 3


def cases():
    x = tf.random.normal([B, L, H])
    memory = tf.random.normal([B, L, H])
    dy = tf.random.normal([B, L, H])
    lengths = tf.range(B) + (L - B + 1)
    pad_bias = layer_utils.input_padding_to_bias(
        1.0 - tf.sequence_mask(lengths, L, dtype=tf.float32))
    causal = layer_utils.lower_triangle_attention_bias(L)
    monotonic = tf.minimum(pad_bias[:, None, None, :], causal)
    waitk = tf.minimum(pad_bias[:, None, :], layer_utils.waitk_attention_bias(
        memory_length=L, query_length=L, waitk_lagging=WAIT_K)[None])
    kw = dict(hidden_size=H, num_attention_heads=HEADS, filter_size=F,
              attention_dropout_rate=RATE, ffn_dropout_rate=RATE,
              layer_postprocess_dropout_rate=RATE)
    out = []
    for name, native_cls, ours_cls, extra, args, kwargs in (
            ("monotonic_encoder_layer", tl.TransformerEncoderLayer, layers.NeurSTEncoderLayer,
             {}, (x, monotonic), dict(is_training=True)),
            ("waitk_decoder_layer", tl.TransformerDecoderLayer, layers.NeurSTDecoderLayer, {},
             (x, causal, None), dict(memory=memory, memory_bias=waitk, is_training=True)),
            ("gpt2_decoder_layer", tl.TransformerDecoderLayer, layers.NeurSTDecoderLayer,
             dict(with_cross_attention=False), (x, causal, None), dict(is_training=True))):
        native = native_cls(name="native_" + name, **kw, **extra)
        ours = ours_cls.from_native(native_cls(name="ours_" + name, **kw, **extra))
        out.append((name + "_base_neurst", [B, L, H], fwd_bwd(ours, args, kwargs, dy),
                    fwd_bwd(native, args, kwargs, dy)))
    return out


if __name__ == "__main__":
    main(cases, "cpu_neurst_zoo_layers",
         "NeurST zoo layer forms on CPU, training (dropout 0.1 both): ours vs NeurST's")
