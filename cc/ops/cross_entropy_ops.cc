// Label-smoothed cross-entropy (fairseq / NeurST soft-target form).
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("LightseqCrossEntropy")
    .Input("logits: T")
    .Input("targets: Tidx")
    .Output("loss: float")
    .Output("nll: float")
    .Output("lse: float")
    .Output("sums: float")
    .Attr("T: {float, half, bfloat16}")
    .Attr("Tidx: {int32, int64}")
    .Attr("epsilon: float = 0.0")
    .Attr("padding_id: int = -1")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle logits, lead;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &logits));
      TF_RETURN_IF_ERROR(c->Subshape(logits, 0, -1, &lead));
      TF_RETURN_IF_ERROR(c->Merge(lead, c->input(1), &lead));
      c->set_output(0, lead);
      c->set_output(1, lead);
      c->set_output(2, lead);
      c->set_output(3, c->Vector(3));
      return absl::OkStatus();
    })
    .Doc(R"doc(
logits: [..., V]; targets: logits.shape[:-1]. Soft target q: 1 - epsilon on
the target class, epsilon / (V - 1) on the others. loss = -sum q log softmax,
nll = -log softmax[target], lse = logsumexp (kept for the gradient; not
differentiable), sums = [sum loss, sum nll, non-padding tokens]. Tokens whose
target is padding_id give zeros.
)doc");

REGISTER_OP("LightseqCrossEntropyGrad")
    .Input("dloss: float")
    .Input("dnll: float")
    .Input("logits: T")
    .Input("targets: Tidx")
    .Input("lse: float")
    .Input("nll: float")
    .Output("dlogits: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("Tidx: {int32, int64}")
    .Attr("epsilon: float = 0.0")
    .Attr("padding_id: int = -1")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(2));
      return absl::OkStatus();
    })
    .Doc("dlogits = (dloss + dnll) softmax - dloss q - dnll onehot(target), one pass.");

}  // namespace lightseq_tf
