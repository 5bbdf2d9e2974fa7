#include "engine/model/config.h"

#include <string>

#include "common/error.h"

namespace vitmsn {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(codes::kConfig, "config.json: " + what);
}

// Bounds keep every size product far from int64 overflow and reject nonsense early.
constexpr int64_t kMaxDim = 1 << 16;

}  // namespace

void validate(const ModelConfig& c) {
  require(c.hidden_size > 0 && c.hidden_size <= kMaxDim, "hidden_size must be a positive integer");
  require(c.num_layers > 0 && c.num_layers <= 1024, "num_hidden_layers must be a positive integer");
  require(c.num_heads > 0 && c.num_heads <= c.hidden_size, "num_attention_heads must be a positive integer");
  require(c.hidden_size % c.num_heads == 0, "hidden_size (" + std::to_string(c.hidden_size) +
                                                ") must be a multiple of num_attention_heads (" +
                                                std::to_string(c.num_heads) + ")");
  require(c.intermediate_size > 0 && c.intermediate_size <= 4 * kMaxDim,
          "intermediate_size must be a positive integer");
  require(c.patch_size > 0 && c.patch_size <= 1024, "patch_size must be a positive integer");
  require(c.image_height >= c.patch_size && c.image_width >= c.patch_size && c.image_height <= kMaxDim &&
              c.image_width <= kMaxDim,
          "image_size must be at least patch_size");
  require(c.num_channels > 0 && c.num_channels <= 64, "num_channels must be a positive integer");
  require(c.layer_norm_eps > 0 && c.layer_norm_eps < 1, "layer_norm_eps must be in (0, 1)");
  require(c.num_labels >= -1 && c.num_labels <= (1 << 24), "num_labels is out of range");
}

}  // namespace vitmsn
