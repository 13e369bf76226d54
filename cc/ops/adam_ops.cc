// Fused multi-tensor Adam / AdamW over resource variables, updated in place.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("LightseqMultiTensorAdam")
    .Input("var: N * resource")
    .Input("m: N * resource")
    .Input("v: N * resource")
    .Input("grad: N * T")
    .Input("lr: float")
    .Input("beta1: float")
    .Input("beta2: float")
    .Input("epsilon: float")
    .Input("weight_decay: float")
    .Input("step: int64")
    .Input("grad_scale: float")
    .Input("found_inf: float")
    .Attr("N: int >= 1")
    .Attr("T: {float, half, bfloat16}")
    .Attr("adamw: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      ShapeHandle unused;
      for (int i = 4 * n; i < 4 * n + 8; ++i) TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
      // Each grad has its variable's shape when the handles carry one.
      for (int i = 0; i < n; ++i) {
        for (int k = 0; k < 3; ++k) {
          const auto* data = c->input_handle_shapes_and_types(k * n + i);
          if (data != nullptr && !data->empty())
            TF_RETURN_IF_ERROR(c->Merge(c->input(3 * n + i), (*data)[0].shape, &unused));
        }
      }
      return absl::OkStatus();
    })
    .Doc(R"doc(
One Adam (adamw=false: L2 decay added to the gradient) or AdamW (adamw=true:
decoupled decay p -= lr * weight_decay * p) step over N float32 variables and
their float32 moments m and v, in place. grad[i] (float32, float16 or
bfloat16) has var[i]'s shape and is divided by grad_scale first. step >= 1 is
the 1-based step number of the bias corrections 1 - beta^step. If found_inf is
non-zero nothing is updated (loss-scaling overflow skip). The float32 order
of operations is in cuda/include/lightseq/adam_step.h.
)doc");

}  // namespace lightseq_tf
