// From a forward pass to one vector per image (encode()) or class probabilities (classify()).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/model/model.h"

namespace vitmsn {

enum class Pooling {
  Cls,         // last_hidden_state[:, 0]: what HF users take
  ClsPrenorm,  // hidden_states[-1][:, 0]: the CLS before the final LayerNorm (MSN's own evaluation)
  Mean,        // mean of last_hidden_state[:, 1:]: the patch tokens, CLS excluded
};

// [B, D] from a forward result (ClsPrenorm needs it run with output_hidden_states). With
// `normalize`, each row is divided by max(‖row‖₂, 1e-12), as torch.nn.functional.normalize does.
std::vector<float> pool(const ForwardResult& r, Pooling pooling, bool normalize);

// Row-wise softmax of logits [B, n] (max-subtracted, accumulated in double).
std::vector<float> softmax_rows(const std::vector<float>& logits, int64_t B, int64_t n);

}  // namespace vitmsn
