// The whole Transformer encoder layer as one forward and one backward op
// (math, dropout streams and variable layout: cuda/include/lightseq/encoder_layer.h).
#include "cc/ops/layer_op_attrs.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

// x [B, L, H], lengths [B], seed [], then the twelve parameters starting at
// input `params`: their shapes against H and F (ffn1_kernel's columns).
absl::Status EncoderLayerInputs(InferenceContext* c, int x, int params, ShapeHandle* x_shape) {
  ShapeHandle l, unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(x), 3, x_shape));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(x + 1), 1, &l));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(x + 2), 0, &unused));
  DimensionHandle b, h = c->Dim(*x_shape, 2), f, h3;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(*x_shape, 0), c->Dim(l, 0), &b));
  ShapeHandle ffn1;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(params + 8), 2, &ffn1));
  f = c->Dim(ffn1, 1);
  TF_RETURN_IF_ERROR(c->Multiply(h, 3, &h3));
  const std::vector<std::vector<DimensionHandle>> shapes = {
      {h}, {h}, {h, h3}, {h3}, {h, h}, {h}, {h}, {h}, {h, f}, {f}, {f, h}, {h}};
  for (int i = 0; i < 12; ++i) {
    ShapeHandle s;
    TF_RETURN_IF_ERROR(c->Merge(c->input(params + i), c->MakeShape(shapes[i]), &s));
  }
  return absl::OkStatus();
}

}  // namespace

// The twelve parameters as inputs (Kind Input, Role "") or their gradients
// as outputs (Output, "d_").
#define LIGHTSEQ_ENCODER_PARAMS(Kind, Role) \
  .Kind(Role "ln1_gamma: T")        \
      .Kind(Role "ln1_beta: T")     \
      .Kind(Role "qkv_kernel: T")   \
      .Kind(Role "qkv_bias: T")     \
      .Kind(Role "out_kernel: T")   \
      .Kind(Role "out_bias: T")     \
      .Kind(Role "ln2_gamma: T")    \
      .Kind(Role "ln2_beta: T")     \
      .Kind(Role "ffn1_kernel: T")  \
      .Kind(Role "ffn1_bias: T")    \
      .Kind(Role "ffn2_kernel: T")  \
      .Kind(Role "ffn2_bias: T")

REGISTER_OP("LightseqEncoderLayer")
    .Input("x: T")
    .Input("lengths: int32")
    .Input("seed: int64")
    LIGHTSEQ_ENCODER_PARAMS(Input, "")
    .Output("y: T")
    .Output("saved: uint8")
    LIGHTSEQ_LAYER_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x;
      TF_RETURN_IF_ERROR(EncoderLayerInputs(c, 0, 3, &x));
      c->set_output(0, x);
      c->set_output(1, c->Vector(InferenceContext::kUnknownDim));
      return absl::OkStatus();
    })
    .Doc(R"doc(
A Transformer encoder layer (NeurST's TransformerEncoderLayer): self-attention
over keys j < lengths[b], then the FFN, pre- or post-LayerNorm, with the
dropouts of training. x [B, L, H]; kernels are [in, out]. `saved` is what
LightseqEncoderLayerGrad needs (an opaque buffer, the same bytes on CPU and GPU).
)doc");

REGISTER_OP("LightseqEncoderLayerGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("lengths: int32")
    .Input("seed: int64")
    LIGHTSEQ_ENCODER_PARAMS(Input, "")
    .Input("saved: uint8")
    .Output("dx: T")
    LIGHTSEQ_ENCODER_PARAMS(Output, "d_")
    LIGHTSEQ_LAYER_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, dy;
      TF_RETURN_IF_ERROR(EncoderLayerInputs(c, 1, 4, &x));
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), x, &dy));
      c->set_output(0, dy);
      for (int i = 0; i < 12; ++i) c->set_output(1 + i, c->input(4 + i));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradient of LightseqEncoderLayer: dx and the twelve parameter gradients.
`saved` must be the forward's output for the same inputs and attributes; its
size is checked (reading it never goes out of bounds), its contents cannot be
without a device-to-host copy on the GPU.
)doc");

#undef LIGHTSEQ_ENCODER_PARAMS

}  // namespace lightseq_tf
