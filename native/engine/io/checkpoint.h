// A model folder's weights, whatever files they are stored in: one model.safetensors, or shards
// listed by model.safetensors.index.json; likewise pytorch_model.bin (see pytorch_bin.h). Tensors are exposed without
// copying; read_f32 converts one to float32 on demand.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/io/safetensors.h"

namespace vitmsn {

class Checkpoint {
 public:
  // Loads the weights of the model folder `dir`, trying in order:
  //   model.safetensors.index.json  (sharded safetensors)
  //   model.safetensors
  //   pytorch_model.bin.index.json  (sharded torch.save files)
  //   pytorch_model.bin
  // Throws Error: kWeightsNotFound when the folder holds none of them (the message lists what was
  // looked for) or a shard the index names is missing; kCheckpointInvalid for malformed files,
  // shard names that leave the folder, index entries absent from their shard, or a tensor name
  // stored twice.
  static std::unique_ptr<Checkpoint> open_dir(const std::string& dir);

  // nullptr when absent. The pointer stays valid while the Checkpoint lives.
  const TensorInfo* find(const std::string& name) const;
  // Every tensor name, in file order (shards in the order the index first names them).
  std::vector<std::string> names() const;
  size_t size() const { return tensors_.size(); }
  // Which file the weights came from (the index or model.safetensors), for messages.
  const std::string& source() const { return source_; }

  // The tensor's elements as float32. F32 is copied; F16 and BF16 convert exactly (subnormals,
  // infinities and NaNs included); F64 rounds to nearest. Other dtypes throw kCheckpointInvalid.
  static std::vector<float> read_f32(const TensorInfo& t);

  // Registration used by the format loaders: `owner` keeps the memory that the tensors point into
  // alive (a type-erased handle, so a future format with its own storage plugs in the same way).
  // A name already registered throws kCheckpointInvalid.
  void add_tensors(std::shared_ptr<const void> owner, const std::vector<TensorInfo>& tensors);

 private:
  Checkpoint() = default;

  std::string source_;
  std::vector<std::shared_ptr<const void>> owners_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
};

// Exact IEEE half / bfloat16 → float conversions (exposed for tests).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);

}  // namespace vitmsn
