// Sizes and attributes of the embedding op (lightseq/embedding.h), shared by
// the CUDA launchers and the CPU twin (no CUDA headers here).
#pragma once

#include <cstdint>

namespace lightseq {

constexpr unsigned long long kNoBadIndex = ~0ull;

struct EmbeddingShape {
  int64_t tokens;   // number of ids (product of ids' dims)
  int64_t seq_len;  // length of ids' last axis (1 for a single decoding step)
  int64_t hidden;
  int64_t vocab;
};

struct EmbeddingArgs {
  float scale;          // applied to the table row (NeurST: sqrt(hidden))
  bool positions;       // add the sinusoid signal
  int64_t pos_offset;   // position of the first token along the last axis
  int64_t padding_id;   // < 0: none
  uint64_t seed;        // dropout
  float rate;           // dropout rate in [0, 1)
};

}  // namespace lightseq
