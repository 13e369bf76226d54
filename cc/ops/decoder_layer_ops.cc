// The whole Transformer decoder layer (training: all target positions at
// once) as one forward and one backward op (math, dropout streams, layout:
// cuda/include/lightseq/decoder_layer.h).
#include "cc/ops/layer_op_attrs.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

// x [B, L, H], memory [B, S, H], mem_lengths [B], seed [], then the twenty
// parameters from input `params`: their shapes against H and F.
absl::Status DecoderLayerInputs(InferenceContext* c, int x, int params, ShapeHandle* x_shape,
                                ShapeHandle* mem_shape) {
  ShapeHandle l, unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(x), 3, x_shape));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(x + 1), 3, mem_shape));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(x + 2), 1, &l));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(x + 3), 0, &unused));
  DimensionHandle b, h, f, h2, h3;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(*x_shape, 0), c->Dim(*mem_shape, 0), &b));
  TF_RETURN_IF_ERROR(c->Merge(b, c->Dim(l, 0), &b));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(*x_shape, 2), c->Dim(*mem_shape, 2), &h));
  ShapeHandle ffn1;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(params + 16), 2, &ffn1));
  f = c->Dim(ffn1, 1);
  TF_RETURN_IF_ERROR(c->Multiply(h, 2, &h2));
  TF_RETURN_IF_ERROR(c->Multiply(h, 3, &h3));
  const std::vector<std::vector<DimensionHandle>> shapes = {
      {h}, {h}, {h, h3}, {h3}, {h, h}, {h},                    // self-attention
      {h}, {h}, {h, h}, {h}, {h, h2}, {h2}, {h, h}, {h},       // encoder-decoder attention
      {h}, {h}, {h, f}, {f}, {f, h}, {h}};                     // FFN
  for (int i = 0; i < 20; ++i) {
    ShapeHandle s;
    TF_RETURN_IF_ERROR(c->Merge(c->input(params + i), c->MakeShape(shapes[i]), &s));
  }
  return absl::OkStatus();
}

}  // namespace

// The twenty parameters as inputs (Kind Input, Role "") or their gradients
// as outputs (Output, "d_").
#define LIGHTSEQ_DECODER_PARAMS(Kind, Role) \
  .Kind(Role "ln1_gamma: T")                \
      .Kind(Role "ln1_beta: T")             \
      .Kind(Role "qkv_kernel: T")           \
      .Kind(Role "qkv_bias: T")             \
      .Kind(Role "out_kernel: T")           \
      .Kind(Role "out_bias: T")             \
      .Kind(Role "ln2_gamma: T")            \
      .Kind(Role "ln2_beta: T")             \
      .Kind(Role "q_kernel: T")             \
      .Kind(Role "q_bias: T")               \
      .Kind(Role "kv_kernel: T")            \
      .Kind(Role "kv_bias: T")              \
      .Kind(Role "cross_out_kernel: T")     \
      .Kind(Role "cross_out_bias: T")       \
      .Kind(Role "ln3_gamma: T")            \
      .Kind(Role "ln3_beta: T")             \
      .Kind(Role "ffn1_kernel: T")          \
      .Kind(Role "ffn1_bias: T")            \
      .Kind(Role "ffn2_kernel: T")          \
      .Kind(Role "ffn2_bias: T")

REGISTER_OP("LightseqDecoderLayer")
    .Input("x: T")
    .Input("memory: T")
    .Input("mem_lengths: int32")
    .Input("seed: int64")
    LIGHTSEQ_DECODER_PARAMS(Input, "")
    .Output("y: T")
    .Output("saved: uint8")
    LIGHTSEQ_LAYER_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, m;
      TF_RETURN_IF_ERROR(DecoderLayerInputs(c, 0, 4, &x, &m));
      c->set_output(0, x);
      c->set_output(1, c->Vector(InferenceContext::kUnknownDim));
      return absl::OkStatus();
    })
    .Doc(R"doc(
A Transformer decoder layer (NeurST's TransformerDecoderLayer) over all target
positions at once: causal self-attention, attention over memory keys
j < mem_lengths[b], FFN; pre- or post-LayerNorm; the dropouts of training.
x [B, L, H], memory [B, S, H]; kernels [in, out]. `saved` is what
LightseqDecoderLayerGrad needs (opaque; the same bytes on CPU and GPU).
)doc");

REGISTER_OP("LightseqDecoderLayerGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("memory: T")
    .Input("mem_lengths: int32")
    .Input("seed: int64")
    LIGHTSEQ_DECODER_PARAMS(Input, "")
    .Input("saved: uint8")
    .Output("dx: T")
    .Output("dmemory: T")
    LIGHTSEQ_DECODER_PARAMS(Output, "d_")
    LIGHTSEQ_LAYER_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, m, dy;
      TF_RETURN_IF_ERROR(DecoderLayerInputs(c, 1, 5, &x, &m));
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), x, &dy));
      c->set_output(0, dy);
      c->set_output(1, m);
      for (int i = 0; i < 20; ++i) c->set_output(2 + i, c->input(5 + i));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradient of LightseqDecoderLayer: dx, dmemory and the twenty parameter
gradients. `saved` must be the forward's output for the same inputs and
attributes (its size is checked).
)doc");

#undef LIGHTSEQ_DECODER_PARAMS

}  // namespace lightseq_tf
