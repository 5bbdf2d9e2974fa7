// From a forward pass to one vector per image or class probabilities, on the host: the reference
// that Model::embed (encode() and classify()) matches bit for bit on the CPU. Pooling is in model.h.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/model/model.h"

namespace vitmsn {

// [B, D] from a forward result (ClsPrenorm needs it run with output_hidden_states). With
// `normalize`, each row is divided by max(‖row‖₂, 1e-12), as torch.nn.functional.normalize does.
std::vector<float> pool(const ForwardResult& r, Pooling pooling, bool normalize);

// Row-wise softmax of logits [B, n] (max-subtracted, accumulated in double).
std::vector<float> softmax_rows(const std::vector<float>& logits, int64_t B, int64_t n);

}  // namespace vitmsn
