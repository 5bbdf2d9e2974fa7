#include "engine/io/zip_reader.h"

#include <algorithm>

#include "common/error.h"
#include "engine/io/json.h"

namespace vitmsn {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kEocd64LocatorSig = 0x07064b50;
constexpr uint32_t kEocd64Sig = 0x06064b50;
constexpr size_t kEocdSize = 22;
constexpr size_t kEocd64LocatorSize = 20;
constexpr size_t kEocd64Size = 56;
constexpr size_t kCentralSize = 46;
constexpr size_t kLocalSize = 30;
constexpr size_t kMaxComment = 0xFFFF;

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t u64(const uint8_t* p) { return static_cast<uint64_t>(u32(p)) | (static_cast<uint64_t>(u32(p + 4)) << 32); }

}  // namespace

bool looks_like_zip(const uint8_t* data, size_t size) { return size >= 4 && u32(data) == kLocalSig; }

ZipReader::ZipReader(const uint8_t* data, size_t size, std::string label)
    : data_(data), size_(size), label_(std::move(label)) {
  read_directory();
}

void ZipReader::fail(const std::string& what) const { throw Error(codes::kCheckpointInvalid, label_ + ": " + what); }

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

void ZipReader::read_directory() {
  if (size_ < kEocdSize) fail("too short to be a zip archive (" + std::to_string(size_) + " bytes)");
  // The end-of-central-directory record sits in the last 22 + (up to 65535 comment) bytes; scan
  // backwards for its signature, taking the first one whose comment length reaches the end exactly.
  size_t eocd = SIZE_MAX;
  const size_t lowest = size_ > kEocdSize + kMaxComment ? size_ - kEocdSize - kMaxComment : 0;
  for (size_t p = size_ - kEocdSize + 1; p-- > lowest;) {
    if (u32(data_ + p) == kEocdSig && p + kEocdSize + u16(data_ + p + 20) == size_) {
      eocd = p;
      break;
    }
  }
  if (eocd == SIZE_MAX) fail("no zip end-of-central-directory record (truncated or not a zip archive)");
  const uint8_t* e = data_ + eocd;
  uint64_t disk = u16(e + 4), cd_disk = u16(e + 6), n_disk = u16(e + 8), n_total = u16(e + 10);
  uint64_t cd_size = u32(e + 12), cd_offset = u32(e + 16);
  const bool zip64 = n_total == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu;
  if (zip64) {
    if (eocd < kEocd64LocatorSize || u32(data_ + eocd - kEocd64LocatorSize) != kEocd64LocatorSig) {
      fail("zip64 end-of-central-directory locator missing");
    }
    const uint64_t rec = u64(data_ + eocd - kEocd64LocatorSize + 8);
    if (rec > size_ || size_ - rec < kEocd64Size || u32(data_ + rec) != kEocd64Sig) {
      fail("zip64 end-of-central-directory record missing or out of bounds");
    }
    const uint8_t* r = data_ + rec;
    disk = u32(r + 16);
    cd_disk = u32(r + 20);
    n_disk = u64(r + 24);
    n_total = u64(r + 32);
    cd_size = u64(r + 40);
    cd_offset = u64(r + 48);
  }
  if (disk != 0 || cd_disk != 0 || n_disk != n_total) fail("multi-disk zip archives are not supported");
  if (cd_offset > size_ || cd_size > size_ - cd_offset) fail("central directory lies outside the file (truncated?)");
  // Each central entry takes at least 46 bytes, which bounds how many can exist.
  if (n_total > cd_size / kCentralSize)
    fail("central directory claims " + std::to_string(n_total) + " entries, more than fit");

  entries_.reserve(static_cast<size_t>(n_total));
  size_t p = static_cast<size_t>(cd_offset);
  const size_t cd_end = static_cast<size_t>(cd_offset + cd_size);
  for (uint64_t i = 0; i < n_total; ++i) {
    if (cd_end - p < kCentralSize || u32(data_ + p) != kCentralSig)
      fail("central directory entry " + std::to_string(i) + " is malformed");
    const uint8_t* c = data_ + p;
    const uint16_t flags = u16(c + 8), method = u16(c + 10);
    uint64_t csize = u32(c + 20), usize = u32(c + 24);
    const size_t name_len = u16(c + 28), extra_len = u16(c + 30), comment_len = u16(c + 32);
    uint64_t local = u32(c + 42);
    if (cd_end - p - kCentralSize < name_len + extra_len + comment_len)
      fail("central directory entry " + std::to_string(i) + " overruns the directory");
    std::string name(reinterpret_cast<const char*>(c + kCentralSize), name_len);
    // zip64 extended information: the 64-bit values of exactly those fields saturated above.
    const uint8_t* x = c + kCentralSize + name_len;
    for (size_t q = 0; q + 4 <= extra_len;) {
      const uint16_t id = u16(x + q), len = u16(x + q + 2);
      if (q + 4 + len > extra_len) fail("entry '" + printable(name) + "' has a malformed extra field");
      if (id == 0x0001) {
        const uint8_t* v = x + q + 4;
        size_t left = len;
        auto take = [&](uint64_t* field) {
          if (*field != 0xFFFFFFFFu) return;
          if (left < 8) fail("entry '" + printable(name) + "' has a short zip64 extra field");
          *field = u64(v);
          v += 8;
          left -= 8;
        };
        take(&usize);
        take(&csize);
        take(&local);
      }
      q += 4 + len;
    }
    if (flags & 0x1) fail("entry '" + printable(name) + "' is encrypted");
    if (method != 0 || csize != usize) {
      fail("entry '" + printable(name) + "' is compressed (method " + std::to_string(method) +
           "); torch.save writes stored entries only");
    }
    if (local > size_ || size_ - local < kLocalSize || u32(data_ + local) != kLocalSig) {
      fail("entry '" + printable(name) + "' has no local header at offset " + std::to_string(local));
    }
    const uint64_t data_off = local + kLocalSize + u16(data_ + local + 26) + u16(data_ + local + 28);
    if (data_off > size_ || usize > size_ - data_off) {
      fail("entry '" + printable(name) + "' (" + std::to_string(usize) + " bytes at offset " +
           std::to_string(data_off) + ") extends past the end of the file (truncated?)");
    }
    if (!by_name_.emplace(name, entries_.size()).second) fail("entry '" + printable(name) + "' appears twice");
    entries_.push_back(ZipEntry{std::move(name), data_ + data_off, static_cast<size_t>(usize)});
    p += kCentralSize + name_len + extra_len + comment_len;
  }
}

}  // namespace vitmsn
