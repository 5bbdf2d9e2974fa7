#include "engine/io/safetensors.h"

#include <map>
#include <mutex>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <map>
#include <mutex>
#include <system_error>

#include "common/error.h"
#include "engine/io/json.h"

namespace vitmsn {

// ---- dtypes -----------------------------------------------------------------------------------

namespace {

struct DTypeEntry {
  const char* name;
  DType type;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {"F64", DType::F64, 8}, {"F32", DType::F32, 4},   {"F16", DType::F16, 2}, {"BF16", DType::BF16, 2},
    {"I64", DType::I64, 8}, {"I32", DType::I32, 4},   {"I16", DType::I16, 2}, {"I8", DType::I8, 1},
    {"U8", DType::U8, 1},   {"BOOL", DType::BOOL, 1},
};

// Valid safetensors dtypes this engine does not read: named separately so the message says
// "unsupported" (a real format we chose not to handle) rather than "unknown" (a corrupt header).
constexpr const char* kOtherSafetensorsDTypes[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                                                   "F4",      "U64",     "U32",     "U16",     "C64"};

const DTypeEntry& entry_of(DType t) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.type == t) return e;
  }
  return kDTypes[0];  // unreachable for a valid enum value
}

std::string supported_list() {
  std::string s;
  for (const DTypeEntry& e : kDTypes) s += std::string(s.empty() ? "" : ", ") + e.name;
  return s;
}

}  // namespace

size_t size_of(DType t) { return entry_of(t).size; }
const char* dtype_name(DType t) { return entry_of(t).name; }

bool parse_dtype(std::string_view name, DType* out) {
  for (const DTypeEntry& e : kDTypes) {
    if (name == e.name) {
      *out = e.type;
      return true;
    }
  }
  return false;
}

std::string file_basename(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// ---- MappedFile -------------------------------------------------------------------------------

namespace {

std::string errno_text(int e) { return std::system_category().message(e); }

// Closes the descriptor on every exit path of the constructor.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

namespace {
// Live mappings (start → size), so release_mapped_pages only ever touches file pages of ours.
std::mutex& live_mappings_mu() {
  static std::mutex mu;
  return mu;
}
std::map<uintptr_t, size_t>& live_mappings() {
  static std::map<uintptr_t, size_t> m;
  return m;
}
}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  if (path.find('\0') != std::string::npos) {
    throw Error(codes::kCheckpointInvalid, "weights path contains a NUL byte");
  }
  // O_NONBLOCK: opening a FIFO planted in a model folder must not hang; fstat rejects it below.
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) throw Error(codes::kWeightsNotFound, path + ": no such file");
    throw Error(codes::kCheckpointInvalid, "cannot open " + path + ": " + errno_text(e));
  }
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) {
    throw Error(codes::kCheckpointInvalid, "cannot stat " + path + ": " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) throw Error(codes::kCheckpointInvalid, path + " is not a regular file");
  if (st.st_size <= 0) return;  // mmap cannot map 0 bytes; an empty mapping is data_ == nullptr
  if (static_cast<uint64_t>(st.st_size) > std::numeric_limits<size_t>::max()) {
    throw Error(codes::kCheckpointInvalid, path + " is too large to map");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    throw Error(e == ENOMEM ? codes::kOutOfMemory : codes::kCheckpointInvalid,
                "cannot map " + path + ": " + errno_text(e));
  }
  data_ = static_cast<const uint8_t*>(p);
  size_ = size;
  std::lock_guard<std::mutex> lock(live_mappings_mu());
  live_mappings().emplace(reinterpret_cast<uintptr_t>(data_), size_);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) {
    {
      std::lock_guard<std::mutex> lock(live_mappings_mu());
      live_mappings().erase(reinterpret_cast<uintptr_t>(data_));
    }
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
}

void release_mapped_pages(const void* p, size_t n) noexcept {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + n;
  std::lock_guard<std::mutex> lock(live_mappings_mu());
  auto it = live_mappings().upper_bound(b);
  if (it == live_mappings().begin()) return;
  --it;
  if (e > it->first + it->second) return;  // not (wholly) inside a mapping of ours
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (b + page - 1) / page * page, hi = e / page * page;  // whole pages only
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

// ---- SafetensorsFile --------------------------------------------------------------------------

namespace {

std::string offsets_str(uint64_t b, uint64_t e) { return "[" + std::to_string(b) + ", " + std::to_string(e) + "]"; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

[[noreturn]] void fail_file(const std::string& base, const std::string& what) {
  throw Error(codes::kCheckpointInvalid, base + ": " + what);
}

// Reads one tensor's header entry; `fail` throws with the file name prefixed.
class EntryReader {
 public:
  EntryReader(const std::string& file, const std::string& name, const JsonValue& entry, uint64_t data_size)
      : file_(file), name_(name), entry_(entry), data_size_(data_size) {}

  TensorInfo read(const uint8_t* data_base) {
    if (!entry_.is_object()) fail("is " + std::string(json_type_name(entry_)) + ", expected an object");
    TensorInfo t;
    t.name = name_;
    t.file = file_;
    t.dtype = read_dtype();
    t.shape = read_shape();
    const uint64_t want = byte_size(t.shape, size_of(t.dtype));
    uint64_t begin = 0, end = 0;
    read_offsets(&begin, &end);
    if (end - begin != want) {
      fail("is " + std::string(dtype_name(t.dtype)) + " with shape " + shape_str(t.shape) + " (" +
           std::to_string(want) + " bytes) but data_offsets " + offsets_str(begin, end) + " span " +
           std::to_string(end - begin) + " bytes");
    }
    t.data = data_base + begin;
    t.nbytes = static_cast<size_t>(want);
    return t;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(codes::kCheckpointInvalid, file_basename(file_) + ": tensor '" + printable(name_) + "' " + what);
  }

  const JsonValue& field(const char* key) const {
    const JsonValue* v = entry_.find(key);
    if (v == nullptr) fail(std::string("has no '") + key + "'");
    return *v;
  }

  DType read_dtype() const {
    const JsonValue& v = field("dtype");
    if (!v.is_string()) fail("dtype is " + std::string(json_type_name(v)) + ", expected a string");
    DType d;
    if (parse_dtype(v.as_string(), &d)) return d;
    for (const char* other : kOtherSafetensorsDTypes) {
      if (v.as_string() == other) {
        fail("has unsupported dtype '" + printable(v.as_string()) + "' (supported: " + supported_list() + ")");
      }
    }
    fail("has unknown dtype '" + printable(v.as_string()) + "' (supported: " + supported_list() + ")");
  }

  std::vector<int64_t> read_shape() const {
    const JsonValue& v = field("shape");
    if (!v.is_array()) fail("shape is " + std::string(json_type_name(v)) + ", expected an array");
    std::vector<int64_t> shape;
    for (size_t i = 0; i < v.items().size(); ++i) {
      const JsonValue& d = v.items()[i];
      if (!d.is_integer() || d.as_int64() < 0) {
        fail("shape[" + std::to_string(i) + "] is " +
             (d.is_integer() ? std::to_string(d.as_int64()) : std::string(json_type_name(d))) +
             ", expected a non-negative integer");
      }
      shape.push_back(d.as_int64());
    }
    return shape;
  }

  // product(shape) * elem, refusing anything past int64 (no real tensor comes near it).
  uint64_t byte_size(const std::vector<int64_t>& shape, size_t elem) const {
    uint64_t n = elem;
    for (int64_t d : shape) {
      if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) ||
          n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail("shape " + shape_str(shape) + " has too many elements (byte size overflows)");
      }
    }
    return n;
  }

  void read_offsets(uint64_t* begin, uint64_t* end) const {
    const JsonValue& v = field("data_offsets");
    if (!v.is_array() || v.items().size() != 2) {
      fail("data_offsets is " +
           (v.is_array() ? "an array of length " + std::to_string(v.items().size()) : std::string(json_type_name(v))) +
           ", expected [begin, end]");
    }
    for (const JsonValue& x : v.items()) {
      if (!x.is_integer() || x.as_int64() < 0) {
        fail("data_offsets must be two non-negative integers below 2^63 (found " +
             (x.is_integer() ? std::to_string(x.as_int64()) : std::string(json_type_name(x))) + ")");
      }
    }
    *begin = static_cast<uint64_t>(v.items()[0].as_int64());
    *end = static_cast<uint64_t>(v.items()[1].as_int64());
    if (*begin > *end) fail("data_offsets " + offsets_str(*begin, *end) + " have begin after end");
    if (*end > data_size_) {
      fail("data_offsets " + offsets_str(*begin, *end) + " exceed the data section (" + std::to_string(data_size_) +
           " bytes)");
    }
  }

  const std::string& file_;
  const std::string& name_;
  const JsonValue& entry_;
  uint64_t data_size_;
};

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile(std::make_unique<MappedFile>(path)));
  f->parse();
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse() {
  const std::string base = file_basename(file_->path());
  const uint8_t* bytes = file_->data();
  const uint64_t size = file_->size();

  if (size == 0) fail_file(base, "file is empty");
  if (size < 8) fail_file(base, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian regardless of host
  if (n > size - 8) {
    fail_file(base, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
                        " bytes)");
  }
  if (n > kSafetensorsMaxHeader) {
    fail_file(base, "header length " + std::to_string(n) + " exceeds the " + std::to_string(kSafetensorsMaxHeader) +
                        "-byte limit");
  }

  JsonValue header;
  try {
    header = parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(n)));
  } catch (const JsonError& e) {
    fail_file(base, "header is not valid JSON (at byte " + std::to_string(8 + e.offset()) +
                        " of the file: " + e.reason() + ")");
  }
  if (!header.is_object())
    fail_file(base, std::string("header is ") + json_type_name(header) + ", expected a JSON object");

  const uint64_t data_size = size - 8 - n;
  const uint8_t* data_base = bytes + 8 + n;
  const std::vector<std::string>& keys = header.keys();
  const std::vector<JsonValue>& values = header.values();
  tensors_.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == "__metadata__") {
      const JsonValue& m = values[i];
      if (!m.is_object()) fail_file(base, std::string("__metadata__ is ") + json_type_name(m) + ", expected an object");
      for (size_t j = 0; j < m.keys().size(); ++j) {
        if (!m.values()[j].is_string()) {
          fail_file(base, "__metadata__ value '" + printable(m.keys()[j]) + "' is " + json_type_name(m.values()[j]) +
                              ", expected a string");
        }
        metadata_[m.keys()[j]] = m.values()[j].as_string();
      }
      continue;
    }
    by_name_[keys[i]] = tensors_.size();  // keys are unique: the JSON parser rejects duplicates
    tensors_.push_back(EntryReader(file_->path(), keys[i], values[i], data_size).read(data_base));
  }

  // The tensors must tile the data section exactly, as the reference reader (Rust safetensors,
  // Metadata::validate) requires: sorted by (begin, end), the first begins at 0, each begins where
  // the previous one ends, and the last ends at the end of the file. Besides overlaps, this catches
  // a header length that is too small: the JSON still parses when only its padding is cut off, but
  // the data section then starts early and every tensor would be read from the wrong bytes.
  std::vector<const TensorInfo*> order;
  order.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->data != b->data ? a->data < b->data : a->nbytes < b->nbytes;
  });
  auto span = [&](const TensorInfo* x) {
    const uint64_t b = static_cast<uint64_t>(x->data - data_base);
    return offsets_str(b, b + x->nbytes);
  };
  auto uncovered = [&](uint64_t b, uint64_t e) {
    fail_file(base, "bytes " + offsets_str(b, e) + " of the data section (" + std::to_string(data_size) +
                        " bytes) belong to no tensor; the tensors must cover it exactly (is the header length right?)");
  };
  uint64_t covered = 0;  // the data section is tiled up to here
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : order) {
    const uint64_t b = static_cast<uint64_t>(t->data - data_base);
    if (b < covered) {
      fail_file(base, "tensors '" + printable(prev->name) + "' " + span(prev) + " and '" + printable(t->name) + "' " +
                          span(t) + " overlap");
    }
    if (b > covered) uncovered(covered, b);
    covered = b + t->nbytes;
    prev = t;
  }
  if (covered != data_size) uncovered(covered, data_size);
}

}  // namespace vitmsn
