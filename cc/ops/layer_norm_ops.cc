// LayerNorm over the last axis, forward and backward.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

// x: [..., H] (rank >= 2); `param` inputs are [H]; returns H in *hidden and
// x.shape[:-1] in *lead.
absl::Status LastAxisShapes(InferenceContext* c, int x_index,
                      std::initializer_list<int> param_inputs,
                      DimensionHandle* hidden, ShapeHandle* lead) {
  ShapeHandle x;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(x_index), 2, &x));
  *hidden = c->Dim(x, -1);
  for (int i : param_inputs) {
    ShapeHandle p;
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 1, &p));
    TF_RETURN_IF_ERROR(c->Merge(*hidden, c->Dim(p, 0), hidden));
  }
  return c->Subshape(x, 0, -1, lead);
}

}  // namespace

REGISTER_OP("LightseqLayerNorm")
    .Input("x: T")
    .Input("gamma: T")
    .Input("beta: T")
    .Output("y: T")
    .Output("mean: float")
    .Output("rstd: float")
    .Attr("T: {float, half, bfloat16}")
    .Attr("epsilon: float = 1e-6")
    .SetShapeFn([](InferenceContext* c) {
      DimensionHandle hidden;
      ShapeHandle lead;
      TF_RETURN_IF_ERROR(LastAxisShapes(c, 0, {1, 2}, &hidden, &lead));
      ShapeHandle y;
      TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(0), -1, hidden, &y));
      c->set_output(0, y);
      c->set_output(1, lead);
      c->set_output(2, lead);
      return absl::OkStatus();
    })
    .Doc(R"doc(
y = (x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis of x,
with float32 statistics. mean and rstd (= 1/sqrt(var + epsilon)), shaped
x.shape[:-1], are kept for the gradient and are not differentiable (their
incoming gradients are ignored, as with tf.stop_gradient).
)doc");

REGISTER_OP("LightseqLayerNormGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("mean: float")
    .Input("rstd: float")
    .Input("gamma: T")
    .Output("dx: T")
    .Output("dgamma: T")
    .Output("dbeta: T")
    .Attr("T: {float, half, bfloat16}")
    .SetShapeFn([](InferenceContext* c) {
      DimensionHandle hidden;
      ShapeHandle lead;
      TF_RETURN_IF_ERROR(LastAxisShapes(c, 1, {4}, &hidden, &lead));
      ShapeHandle x;
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &x));
      ShapeHandle stats;
      TF_RETURN_IF_ERROR(c->Merge(c->input(2), lead, &stats));
      TF_RETURN_IF_ERROR(c->Merge(c->input(3), stats, &stats));
      c->set_output(0, x);
      c->set_output(1, c->Vector(hidden));
      c->set_output(2, c->Vector(hidden));
      return absl::OkStatus();
    })
    .Doc("Gradient of LightseqLayerNorm with respect to x, gamma and beta.");

}  // namespace lightseq_tf
