// Harness bindings of the embedding launchers (lightseq/embedding.h).
#include "harness.h"
#include "lightseq/embedding.h"

namespace harness {

namespace {
lightseq::EmbeddingArgs args(float scale, bool positions, int64_t pos_offset, int64_t padding_id,
                             uint64_t seed, float rate) {
  return lightseq::EmbeddingArgs{scale, positions, pos_offset, padding_id, seed, rate};
}
}  // namespace

void bind_embedding(py::module_& m) {
  m.attr("NO_BAD_INDEX") = lightseq::kNoBadIndex;
  m.def(
      "embedding_fwd",
      [](int dtype, int table_dtype, std::uintptr_t ids, bool ids_int64, std::uintptr_t table,
         std::uintptr_t y, int64_t tokens, int64_t seq_len, int64_t hidden, int64_t vocab,
         float scale, bool positions, int64_t pos_offset, int64_t padding_id, uint64_t seed,
         float rate, std::uintptr_t bad_index, std::uintptr_t stream) {
        check(lightseq::embedding_fwd(to_dtype(dtype), to_dtype(table_dtype),
                                      ptr<const void*>(ids), ids_int64, ptr<const void*>(table),
                                      ptr<void*>(y), {tokens, seq_len, hidden, vocab},
                                      args(scale, positions, pos_offset, padding_id, seed, rate),
                                      ptr<unsigned long long*>(bad_index),
                                      ptr<cudaStream_t>(stream)),
              "embedding_fwd");
      },
      py::arg("dtype"), py::arg("table_dtype"), py::arg("ids"), py::arg("ids_int64"),
      py::arg("table"), py::arg("y"), py::arg("tokens"), py::arg("seq_len"), py::arg("hidden"),
      py::arg("vocab"), py::arg("scale"), py::arg("positions"), py::arg("pos_offset"),
      py::arg("padding_id"), py::arg("seed"), py::arg("rate"), py::arg("bad_index"),
      py::arg("stream"));
  m.def("embedding_bwd_workspace_bytes", &lightseq::embedding_bwd_workspace_bytes,
        py::arg("tokens"), py::arg("vocab"), py::arg("hidden"));
  m.def(
      "embedding_bwd",
      [](int dtype, int table_dtype, std::uintptr_t dy, std::uintptr_t ids, bool ids_int64,
         std::uintptr_t dtable, int64_t tokens, int64_t seq_len, int64_t hidden, int64_t vocab,
         float scale, int64_t padding_id, uint64_t seed, float rate, std::uintptr_t workspace,
         size_t workspace_bytes, std::uintptr_t stream) {
        check(lightseq::embedding_bwd(to_dtype(dtype), to_dtype(table_dtype),
                                      ptr<const void*>(dy), ptr<const void*>(ids), ids_int64,
                                      ptr<void*>(dtable), {tokens, seq_len, hidden, vocab},
                                      args(scale, false, 0, padding_id, seed, rate),
                                      ptr<void*>(workspace), workspace_bytes,
                                      ptr<cudaStream_t>(stream)),
              "embedding_bwd");
      },
      py::arg("dtype"), py::arg("table_dtype"), py::arg("dy"), py::arg("ids"),
      py::arg("ids_int64"), py::arg("dtable"), py::arg("tokens"), py::arg("seq_len"),
      py::arg("hidden"), py::arg("vocab"), py::arg("scale"), py::arg("padding_id"),
      py::arg("seed"), py::arg("rate"), py::arg("workspace"), py::arg("workspace_bytes"),
      py::arg("stream"));
}

}  // namespace harness
