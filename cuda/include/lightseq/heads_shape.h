// Shape of the head split / merge (no CUDA headers: shared with the CPU twin).
#pragma once

#include <cstdint>

namespace lightseq {

// [B, L, splits*heads*head_dim] <-> [splits, B, heads, L, head_dim]
struct HeadsShape {
  int64_t splits, batch, len, heads, head_dim;
};

}  // namespace lightseq
