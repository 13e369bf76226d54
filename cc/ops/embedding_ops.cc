// Fused input embedding: lookup * scale + sinusoid positions + dropout.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("LightseqEmbedding")
    .Input("ids: Tidx")
    .Input("table: Ttable")
    .Input("pos_offset: int32")
    .Input("seed: int64")
    .Output("y: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("Ttable: {float, half, bfloat16}")
    .Attr("Tidx: {int32, int64}")
    .Attr("scale: float = 1.0")
    .Attr("positions: bool = true")
    .Attr("max_positions: int = 0")
    .Attr("padding_id: int = -1")
    .Attr("rate: float = 0.0")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle ids, table, unused, y;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &ids));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &table));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 0, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 0, &unused));
      TF_RETURN_IF_ERROR(c->Concatenate(ids, c->Vector(c->Dim(table, 1)), &y));
      c->set_output(0, y);
      return absl::OkStatus();
    })
    .Doc(R"doc(
y[..., :] = dropout(scale * table[ids[...], :] + sinusoid(pos_offset + p)),
p the index along the last axis of ids (rank-1 ids: every token at
pos_offset, one decoding step). NeurST's sinusoid (positions=true). Tokens
equal to padding_id (when >= 0) give zero rows. Ids outside [0, vocab) are
an InvalidArgument error. pos_offset + length must not exceed max_positions
(when > 0). Dropout is stateless: the mask is a function of (seed, element).
)doc");

REGISTER_OP("LightseqEmbeddingGrad")
    .Input("dy: T")
    .Input("ids: Tidx")
    .Input("vocab: int32")
    .Input("seed: int64")
    .Output("dtable: Ttable")
    .Attr("T: {float, half, bfloat16}")
    .Attr("Ttable: {float, half, bfloat16}")
    .Attr("Tidx: {int32, int64}")
    .Attr("scale: float = 1.0")
    .Attr("padding_id: int = -1")
    .Attr("rate: float = 0.0")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle dy, unused;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 2, &dy));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 0, &unused));
      DimensionHandle vocab;
      TF_RETURN_IF_ERROR(c->MakeDimForScalarInput(2, &vocab));
      c->set_output(0, c->Matrix(vocab, c->Dim(dy, -1)));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Dense table gradient: dtable[v] = scale * sum over tokens with id v of
dropout-masked dy, float32 sums in a fixed order (deterministic).
)doc");

}  // namespace lightseq_tf
