// One incremental decoding step of a Transformer decoder layer (inference:
// beam search / greedy), over NeurST's cache layout (math and cache
// semantics: cuda/include/lightseq/decoder_step.h).
#include "cc/ops/layer_op_attrs.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace lightseq_tf {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("LightseqDecoderStep")
    .Input("x: T")
    .Input("cache_keys: T")
    .Input("cache_values: T")
    .Input("cache_length: int32")
    .Input("memory_keys: T")
    .Input("memory_values: T")
    .Input("memory_lengths: int32")
    .Input("ln1_gamma: T")
    .Input("ln1_beta: T")
    .Input("qkv_kernel: T")
    .Input("qkv_bias: T")
    .Input("out_kernel: T")
    .Input("out_bias: T")
    .Input("ln2_gamma: T")
    .Input("ln2_beta: T")
    .Input("q_kernel: T")
    .Input("q_bias: T")
    .Input("cross_out_kernel: T")
    .Input("cross_out_bias: T")
    .Input("ln3_gamma: T")
    .Input("ln3_beta: T")
    .Input("ffn1_kernel: T")
    .Input("ffn1_bias: T")
    .Input("ffn2_kernel: T")
    .Input("ffn2_bias: T")
    .Output("y: T")
    .Output("new_cache_keys: T")
    .Output("new_cache_values: T")
    LIGHTSEQ_LAYER_MATH_ATTRS
    .Attr("append: bool")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, keys, values, mem_k, mem_v, lengths, unused;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &keys));
      TF_RETURN_IF_ERROR(c->Merge(keys, c->input(2), &keys));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 0, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 4, &mem_k));
      TF_RETURN_IF_ERROR(c->Merge(mem_k, c->input(5), &mem_v));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 1, &lengths));
      DimensionHandle b;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 0), c->Dim(keys, 0), &b));
      TF_RETURN_IF_ERROR(c->Merge(b, c->Dim(mem_k, 0), &b));
      TF_RETURN_IF_ERROR(c->Merge(b, c->Dim(lengths, 0), &b));
      c->set_output(0, x);
      bool append;
      TF_RETURN_IF_ERROR(c->GetAttr("append", &append));
      if (!append) {
        c->set_output(1, keys);
        c->set_output(2, keys);
        return absl::OkStatus();
      }
      DimensionHandle total;
      TF_RETURN_IF_ERROR(c->Add(c->Dim(keys, 1), c->Dim(x, 1), &total));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(c->ReplaceDim(keys, 1, total, &out));
      c->set_output(1, out);
      c->set_output(2, out);
      return absl::OkStatus();
    })
    .Doc(R"doc(
One incremental decoding step of a Transformer decoder layer (NeurST's
TransformerDecoderLayer with a cache; no dropout, no gradient): x [B, n, H]
holds n new target positions per sentence, which follow the cache's first
cache_length positions (causal among themselves).

cache_keys / cache_values [B, C, heads, head_dim] (NeurST's layout).
append=true (NeurST's dynamic mode): cache_length must equal C; the new
caches are [B, C + n, ...], the old rows then this step's. append=false
(static mode: a cache pre-padded to C): rows cache_length .. cache_length +
n - 1 are written (cache_length + n <= C), the other rows kept; the input
buffer is reused when nothing else holds it.

memory_keys / memory_values [B, S, heads, head_dim]: the memory projected by
kv_kernel / kv_bias once per sentence; keys j >= memory_lengths[b] masked.
Kernels [in, out].
)doc");

}  // namespace lightseq_tf
