// The model hyper-parameters the engine needs. lib/config.ts parses and validates config.json and
// hands this plain struct over; validate() re-checks the invariants the engine relies on, so a
// caller that bypasses the TypeScript layer still gets an error instead of undefined behaviour.
#pragma once
#include <cstdint>

namespace vitmsn {

struct ModelConfig {
  int64_t hidden_size = 0;        // D
  int64_t num_layers = 0;         // L
  int64_t num_heads = 0;          // H (D % H == 0, Dh = D / H)
  int64_t intermediate_size = 0;  // I
  int64_t image_height = 0;       // trained resolution
  int64_t image_width = 0;
  int64_t patch_size = 0;         // p
  int64_t num_channels = 0;       // C
  double layer_norm_eps = 1e-12;  // transformers' ViT default; ViT-MSN configs say 1e-6
  bool qkv_bias = true;
  int64_t num_labels = -1;  // from id2label/num_labels; -1 = not stated (checkpoint decides)

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t grid_h() const { return image_height / patch_size; }
  int64_t grid_w() const { return image_width / patch_size; }
  int64_t num_patches() const { return grid_h() * grid_w(); }
};

// Throws vitmsn::Error(ERR_CONFIG_INVALID) naming the first broken field.
void validate(const ModelConfig& c);

}  // namespace vitmsn
