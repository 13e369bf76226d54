// The attributes every whole-layer op (encoder_layer_ops.cc,
// decoder_layer_ops.cc) takes: element type, heads, LayerNorm placement,
// FFN activation, the three dropout rates and the LayerNorm epsilon.
#pragma once

#define LIGHTSEQ_LAYER_ATTRS                             \
  .Attr("T: {float, half, bfloat16}")                    \
      .Attr("heads: int >= 1")                           \
      .Attr("pre_ln: bool")                              \
      .Attr("activation: {'relu', 'gelu', 'gelu_tanh'}") \
      .Attr("attn_dropout: float = 0.0")                 \
      .Attr("act_dropout: float = 0.0")                  \
      .Attr("hidden_dropout: float = 0.0")               \
      .Attr("epsilon: float = 1e-6")
