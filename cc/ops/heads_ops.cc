// Head split (+ QKV bias) and merge around attention.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("LightseqSplitHeads")
    .Input("x: T")
    .Input("bias: T")
    .Output("out: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("heads: int >= 1")
    .Attr("splits: int >= 1 = 1")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, b;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &b));
      int64_t heads, splits;
      TF_RETURN_IF_ERROR(c->GetAttr("heads", &heads));
      TF_RETURN_IF_ERROR(c->GetAttr("splits", &splits));
      DimensionHandle width, d;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 2), c->Dim(b, 0), &width));
      TF_RETURN_IF_ERROR(c->Divide(width, heads * splits, /*evenly_divisible=*/true, &d));
      c->set_output(0, c->MakeShape({c->MakeDim(splits), c->Dim(x, 0), c->MakeDim(heads),
                                     c->Dim(x, 1), d}));
      return absl::OkStatus();
    })
    .Doc("x [B, L, splits*heads*d] + bias -> [splits, B, heads, L, d].");

REGISTER_OP("LightseqMergeHeads")
    .Input("x: T")
    .Output("out: T")
    .Attr("T: {float, half, bfloat16}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 5, &x));
      DimensionHandle w;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(x, 0), c->Dim(x, 2), &w));
      TF_RETURN_IF_ERROR(c->Multiply(w, c->Dim(x, 4), &w));
      c->set_output(0, c->MakeShape({c->Dim(x, 1), c->Dim(x, 3), w}));
      return absl::OkStatus();
    })
    .Doc("x [splits, B, heads, L, d] -> [B, L, splits*heads*d].");

}  // namespace lightseq_tf
