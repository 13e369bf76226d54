// The attributes of the whole-layer ops (encoder_layer_ops.cc,
// decoder_layer_ops.cc, decoder_step_ops.cc): element type, heads, LayerNorm
// placement, FFN activation and the LayerNorm epsilon; the training ops add
// the three dropout rates.
#pragma once

#define LIGHTSEQ_LAYER_MATH_ATTRS                        \
  .Attr("T: {float, half, bfloat16}")                    \
      .Attr("heads: int >= 1")                           \
      .Attr("pre_ln: bool")                              \
      .Attr("activation: {'relu', 'gelu', 'gelu_tanh'}") \
      .Attr("epsilon: float = 1e-6")

#define LIGHTSEQ_LAYER_ATTRS                 \
  LIGHTSEQ_LAYER_MATH_ATTRS                  \
      .Attr("attn_dropout: float = 0.0")     \
      .Attr("act_dropout: float = 0.0")      \
      .Attr("hidden_dropout: float = 0.0")
