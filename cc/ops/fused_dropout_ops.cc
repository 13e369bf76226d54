// The dropout family: plain dropout, bias + dropout + residual, bias +
// activation + dropout. Masks come from a stateless Philox stream keyed by
// the `seed` input (a scalar int64 tensor) and the element index, so they are
// regenerated in the gradient, never stored.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

absl::Status ScalarSeed(InferenceContext* c, int index) {
  ShapeHandle unused;
  return c->WithRank(c->input(index), 0, &unused);
}

// Output 0 (and input `x`) is [..., H]; `bias` is [H]; optional `residual` merges with x.
absl::Status BiasShapes(InferenceContext* c, int x, int bias, int residual, ShapeHandle* out) {
  ShapeHandle xs, b;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(x), 1, &xs));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(bias), 1, &b));
  DimensionHandle h;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(xs, -1), c->Dim(b, 0), &h));
  TF_RETURN_IF_ERROR(c->ReplaceDim(xs, -1, h, &xs));
  if (residual >= 0) TF_RETURN_IF_ERROR(c->Merge(xs, c->input(residual), &xs));
  *out = xs;
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("LightseqDropout")
    .Input("x: T")
    .Input("seed: int64")
    .Output("y: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("rate: float")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarSeed(c, 1));
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("Inverted dropout: y = keep ? x / (1 - rate) : 0, keep from Philox(seed, index).");

REGISTER_OP("LightseqBiasDropoutResidual")
    .Input("x: T")
    .Input("bias: T")
    .Input("residual: T")
    .Input("seed: int64")
    .Output("y: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("rate: float")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarSeed(c, 3));
      ShapeHandle y;
      TF_RETURN_IF_ERROR(BiasShapes(c, 0, 1, 2, &y));
      c->set_output(0, y);
      return absl::OkStatus();
    })
    .Doc("y = residual + dropout(x + bias) over x: [..., H], bias: [H].");

REGISTER_OP("LightseqBiasDropoutResidualGrad")
    .Input("dy: T")
    .Input("seed: int64")
    .Output("dx: T")
    .Output("dbias: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("rate: float")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarSeed(c, 1));
      ShapeHandle dy;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &dy));
      c->set_output(0, dy);
      c->set_output(1, c->Vector(c->Dim(dy, -1)));
      return absl::OkStatus();
    })
    .Doc("dx = dropout(dy) (same seed), dbias = dx summed over all but the last axis.");

REGISTER_OP("LightseqBiasActDropout")
    .Input("x: T")
    .Input("bias: T")
    .Input("seed: int64")
    .Output("y: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("activation: {'relu', 'gelu', 'gelu_tanh'}")
    .Attr("rate: float")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarSeed(c, 2));
      ShapeHandle y;
      TF_RETURN_IF_ERROR(BiasShapes(c, 0, 1, -1, &y));
      c->set_output(0, y);
      return absl::OkStatus();
    })
    .Doc("y = dropout(activation(x + bias)); gelu is exact (erf), gelu_tanh the tanh form.");

REGISTER_OP("LightseqBiasActDropoutGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("bias: T")
    .Input("seed: int64")
    .Output("dx: T")
    .Output("dbias: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("activation: {'relu', 'gelu', 'gelu_tanh'}")
    .Attr("rate: float")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarSeed(c, 3));
      ShapeHandle x;
      TF_RETURN_IF_ERROR(BiasShapes(c, 1, 2, 0, &x));
      c->set_output(0, x);
      c->set_output(1, c->input(2));
      return absl::OkStatus();
    })
    .Doc("Gradient of LightseqBiasActDropout with respect to x and bias.");

}  // namespace lightseq_tf
