// Checkpoint key spellings → one canonical (legacy, unprefixed) spelling.
//
// facebook/vit-msn-* and save_pretrained write legacy names (`encoder.layer.3.attention.attention.query.weight`);
// ViTMSNForImageClassification puts the backbone under `vit.`; transformers 5 renames modules in
// memory (`layers.3.attention.q_proj`, `mlp.fc1`) and such names can reach files too. All map to the
// legacy unprefixed form; `classifier.*` stays as is.
#pragma once
#include <string>

namespace vitmsn {

std::string canonical_weight_name(const std::string& stored);

}  // namespace vitmsn
