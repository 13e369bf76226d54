// Attention softmax: scale, key-padding (lengths) and causal masks, dropout.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

absl::Status SoftmaxInputs(InferenceContext* c, int scores, int lengths, int seed) {
  ShapeHandle s, l, unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(scores), 4, &s));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(lengths), 1, &l));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(seed), 0, &unused));
  tensorflow::shape_inference::DimensionHandle b;
  return c->Merge(c->Dim(s, 0), c->Dim(l, 0), &b);
}

}  // namespace

REGISTER_OP("LightseqAttnSoftmax")
    .Input("scores: T")
    .Input("lengths: int32")
    .Input("seed: int64")
    .Output("probs: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("scale: float = 1.0")
    .Attr("causal: bool = false")
    .Attr("rate: float = 0.0")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(SoftmaxInputs(c, 0, 1, 2));
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc(R"doc(
probs = dropout(softmax(scale * scores + mask)) over scores [B, heads, Lq, Lk].
Key j of batch b is visible when j < lengths[b] and, if causal, when
j <= i + (Lk - Lq). Rows with no visible key are zeros.
)doc");

REGISTER_OP("LightseqAttnSoftmaxGrad")
    .Input("dprobs: T")
    .Input("scores: T")
    .Input("lengths: int32")
    .Input("seed: int64")
    .Output("dscores: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("scale: float = 1.0")
    .Attr("causal: bool = false")
    .Attr("rate: float = 0.0")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(SoftmaxInputs(c, 1, 2, 3));
      ShapeHandle s;
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &s));
      c->set_output(0, s);
      return absl::OkStatus();
    })
    .Doc("Gradient of LightseqAttnSoftmax (recomputes the softmax from scores).");

}  // namespace lightseq_tf
