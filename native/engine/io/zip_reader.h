// Read-only view of the uncompressed ("stored") zip archives that torch.save writes since PyTorch
// 1.6. Entries are located through the central directory and handed out as pointers into the
// caller's memory (the mapped file), so tensor bytes are never copied. Every offset and size is
// checked against the buffer first: a truncated or hostile archive becomes an Error
// (kCheckpointInvalid), never an out-of-bounds read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace vitmsn {

struct ZipEntry {
  std::string name;
  const uint8_t* data;  // into the archive buffer; no alignment guarantee
  size_t size;
};

class ZipReader {
 public:
  // `data`/`size`: the whole archive (it must outlive the reader and its entries). `label` names the
  // file in messages. Throws kCheckpointInvalid for anything this reader cannot take apart safely:
  // not a zip, multi-disk, encrypted or compressed entries, sizes or offsets outside the buffer,
  // duplicate names. zip64 records (written for archives over 4 GiB) are understood.
  ZipReader(const uint8_t* data, size_t size, std::string label);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;

 private:
  [[noreturn]] void fail(const std::string& what) const;
  void read_directory();

  const uint8_t* data_;
  size_t size_;
  std::string label_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
};

// True when the buffer starts like a zip archive (a local file header).
bool looks_like_zip(const uint8_t* data, size_t size);

}  // namespace vitmsn
