// A restricted unpickler for the data.pkl of a torch.save'd state dict. It interprets the pickle
// opcodes itself and never runs code: the only globals it accepts are the handful a state dict
// needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the
// typed storage classes), each mapped to a fixed C++ meaning; any other global, any REDUCE/BUILD
// it does not recognise, and any opcode outside the protocol-2..5 subset torch.save uses is an
// Error (kCheckpointInvalid) naming what was refused. Objects live in an arena and refer to each
// other by pointer, so hostile nesting or cycles cannot overflow the stack or leak.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"  // DType

namespace vitmsn {

// One tensor of the state dict, as _rebuild_tensor_v2 describes it. Sizes, strides and offsets are
// in elements of `dtype`; they are validated by the caller against the storage's real size.
struct PickledTensor {
  std::string name;         // the state-dict key
  std::string storage_key;  // the zip entry <archive>/data/<storage_key> holds the storage bytes
  DType dtype;
  int64_t storage_numel;  // as recorded in the persistent id
  int64_t offset;
  std::vector<int64_t> size;
  std::vector<int64_t> stride;
};

// Limits on a data.pkl; real ones are well below (a ViT-L state dict's pickle is ~100 KiB).
inline constexpr size_t kMaxPickleBytes = 256u << 20;
inline constexpr size_t kMaxPickleObjects = 8u << 20;

// Interprets `data` (a whole pickle) and returns the state dict's tensors in insertion order.
// `label` prefixes every message. The top-level object must be a dict (or OrderedDict) of
// string → tensor.
std::vector<PickledTensor> read_state_dict_pickle(const uint8_t* data, size_t size, const std::string& label);

}  // namespace vitmsn
