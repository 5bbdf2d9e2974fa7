// Reader for the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header, then the raw tensor data. The file is
// memory-mapped and every header field is validated before any tensor is handed out, so a truncated
// or hostile file becomes an Error, never an out-of-bounds read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vitmsn {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t size_of(DType t);          // bytes per element
const char* dtype_name(DType t);  // the safetensors spelling ("F32", "BF16", …)

// Parses a safetensors dtype name. Returns false for names that are not supported here, whether
// they are other safetensors dtypes (F8_E4M3, U32, …) or unknown.
bool parse_dtype(std::string_view name, DType* out);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // [] for a 0-d tensor; any dim may be 0 (an empty tensor)
  // Points into the file mapping, which the owning SafetensorsFile (or Checkpoint) keeps alive.
  // NOT aligned: safetensors guarantees no alignment for tensor data, so consumers must memcpy
  // rather than cast to float* / uint16_t*.
  const uint8_t* data;
  size_t nbytes;     // == product(shape) * size_of(dtype)
  std::string file;  // path of the file that holds the tensor, for messages
};

// RAII read-only mapping of a whole file. A 0-byte file is valid (data() is nullptr, size() 0),
// since mmap cannot map zero bytes. Throws Error: kWeightsNotFound when the file does not exist,
// kCheckpointInvalid when it is not a regular file or cannot be opened/mapped.
// Note: a mapped file truncated by another process while in use raises SIGBUS on access; nothing
// short of copying the file avoids that, and model folders are not expected to change under us.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Drops our page-table references to the whole pages of [p, p + n) when that range lies inside a
// live MappedFile (madvise MADV_DONTNEED; the data stays in the page cache and is re-read on the
// next access), and does nothing otherwise — so a loader can call it on any tensor once it has
// copied it, keeping the mapped checkpoint out of the peak RSS of a streamed load.
void release_mapped_pages(const void* p, size_t n) noexcept;

// Headers larger than this are rejected outright (the reference implementation uses the same cap):
// real headers are a few hundred KiB, and the limit bounds the JSON parser's memory.
inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws Error (kWeightsNotFound for a missing file, kCheckpointInvalid
  // for anything malformed; messages name the file and the offending field).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);

  // Tensors in header order. Pointers stay valid while this object lives.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  // The optional "__metadata__" entry (string → string).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }

 private:
  explicit SafetensorsFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
  void parse();

  std::unique_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// The last path component, for messages ("model.safetensors: …").
std::string file_basename(const std::string& path);

}  // namespace vitmsn
