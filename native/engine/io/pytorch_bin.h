// Reader for pytorch_model.bin: the zip archive torch.save writes (PyTorch >= 1.6), holding
// <archive>/data.pkl (the state dict, read by the restricted unpickler in pickle_reader.h) and one
// stored entry <archive>/data/<key> per storage. The file is memory-mapped; contiguous tensors point
// straight into the mapping, and the rare non-contiguous one is gathered into an owned buffer.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"

namespace vitmsn {

class PytorchBinFile {
 public:
  // Maps and validates `path`. Throws Error: kWeightsNotFound for a missing file;
  // kCheckpointInvalid for the legacy (pre-1.6) format, a malformed archive or pickle, a refused
  // global/opcode, a tensor reaching past its storage, or a big-endian archive.
  static std::unique_ptr<PytorchBinFile> open(const std::string& path);

  // Tensors in state-dict order; pointers stay valid while this object lives.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::string& path() const { return file_->path(); }

 private:
  explicit PytorchBinFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
  void parse();

  std::unique_ptr<MappedFile> file_;
  std::vector<std::vector<uint8_t>> gathered_;  // materialised non-contiguous tensors
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
};

}  // namespace vitmsn
