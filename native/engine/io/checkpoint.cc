#include "engine/io/checkpoint.h"

#include <sys/stat.h>

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "common/error.h"
#include "engine/io/json.h"
#include "engine/io/pytorch_bin.h"

// safetensors stores little-endian data; read_f32 copies it as-is.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the checkpoint reader assumes a little-endian host");

namespace vitmsn {
namespace {

constexpr const char* kSafetensorsFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kBinFile = "pytorch_model.bin";
constexpr const char* kBinIndexFile = "pytorch_model.bin.index.json";
// An index lists a few thousand names; anything this large is not one (and would cost a lot to parse).
constexpr size_t kMaxIndexBytes = 100'000'000;

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool path_exists(const std::string& path) {
  struct stat st;
  // Anything other than "absent" counts as present, so that e.g. a permission problem is reported
  // by the loader that tries to open the file rather than as "no weights".
  return ::stat(path.c_str(), &st) == 0 || (errno != ENOENT && errno != ENOTDIR);
}

// ---- formats ----------------------------------------------------------------------------------
// Each format is a file name to look for and a loader; open_dir uses the first one present. A new
// format (pytorch_model.bin) is one more loader and one more row in kFormats.

void load_single_safetensors(Checkpoint& ck, const std::string& /*dir*/, const std::string& path) {
  std::shared_ptr<SafetensorsFile> f = SafetensorsFile::open(path);
  ck.add_tensors(f, f->tensors());
}

// A shard name must be a plain file name inside the model folder: the index is untrusted input and
// must not be able to point the reader at other files.
void load_single_bin(Checkpoint& ck, const std::string& /*dir*/, const std::string& path) {
  std::shared_ptr<PytorchBinFile> f = PytorchBinFile::open(path);
  ck.add_tensors(f, f->tensors());
}

void check_shard_name(const char* index_file, const std::string& tensor, const std::string& shard) {
  std::string why;
  if (shard.empty())
    why = "is empty";
  else if (shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos)
    why = "contains a path separator";
  else if (shard == "." || shard == "..")
    why = "is not a file name";
  else if (shard.find('\0') != std::string::npos)
    why = "contains a NUL byte";
  if (!why.empty()) {
    throw Error(codes::kCheckpointInvalid, std::string(index_file) + ": shard '" + printable(shard) +
                                               "' named for tensor '" + printable(tensor) + "' " + why +
                                               " (must be a file name inside the model folder)");
  }
}

[[noreturn]] void fail_index(const char* index_file, const std::string& what) {
  throw Error(codes::kCheckpointInvalid, std::string(index_file) + ": " + what);
}

// Sharded checkpoints (safetensors or .bin): an index JSON whose weight_map names each tensor's
// shard. File is SafetensorsFile or PytorchBinFile (same open/find/tensors interface).
template <class File, const char* const* kIndexName>
void load_sharded(Checkpoint& ck, const std::string& dir, const std::string& index_path) {
  const char* const kIndexFile = *kIndexName;
  auto fail_index = [kIndexFile](const std::string& what) { ::vitmsn::fail_index(kIndexFile, what); };
  JsonValue index;
  {
    MappedFile file(index_path);
    if (file.size() > kMaxIndexBytes)
      fail_index("file is " + std::to_string(file.size()) + " bytes, too large for an index");
    try {
      index = parse_json(std::string_view(reinterpret_cast<const char*>(file.data()), file.size()));
    } catch (const JsonError& e) {
      fail_index("not valid JSON (at byte " + std::to_string(e.offset()) + ": " + e.reason() + ")");
    }
  }
  if (!index.is_object()) fail_index(std::string("top level is ") + json_type_name(index) + ", expected an object");
  const JsonValue* map = index.find("weight_map");
  if (map == nullptr) fail_index("has no 'weight_map'");
  if (!map->is_object()) fail_index(std::string("weight_map is ") + json_type_name(*map) + ", expected an object");
  if (map->size() == 0) fail_index("weight_map is empty");

  // Distinct shards in order of first mention, each opened once.
  std::vector<std::string> shard_names;
  std::unordered_map<std::string, size_t> shard_of_name;
  for (size_t i = 0; i < map->keys().size(); ++i) {
    const std::string& tensor = map->keys()[i];
    const JsonValue& v = map->values()[i];
    if (!v.is_string())
      fail_index("weight_map['" + printable(tensor) + "'] is " + json_type_name(v) + ", expected a shard file name");
    check_shard_name(kIndexFile, tensor, v.as_string());
    if (shard_of_name.emplace(v.as_string(), shard_names.size()).second) shard_names.push_back(v.as_string());
  }
  std::vector<std::shared_ptr<File>> shards;
  for (const std::string& name : shard_names) {
    try {
      shards.push_back(File::open(join(dir, name)));
    } catch (const Error& e) {
      if (e.code() != codes::kWeightsNotFound) throw;
      throw Error(codes::kWeightsNotFound, std::string(kIndexFile) + " names shard '" + printable(name) +
                                               "', which is not in " + (dir.empty() ? "." : dir));
    }
  }
  // The index must agree with the shards: a name it lists but its shard lacks is a broken checkpoint.
  for (size_t i = 0; i < map->keys().size(); ++i) {
    const std::string& tensor = map->keys()[i];
    const std::string& shard = map->values()[i].as_string();
    if (shards[shard_of_name.at(shard)]->find(tensor) == nullptr) {
      fail_index("tensor '" + printable(tensor) + "' is listed in shard '" + printable(shard) +
                 "', which does not hold it");
    }
  }
  for (const std::shared_ptr<File>& s : shards) ck.add_tensors(s, s->tensors());
}

struct Format {
  const char* file;
  void (*load)(Checkpoint& ck, const std::string& dir, const std::string& path);
};

constexpr const char* kIndexFileName = kIndexFile;
constexpr const char* kBinIndexFileName = kBinIndexFile;

// The index goes first: a folder holding both an index and a stray model.safetensors is sharded.
// safetensors wins over pytorch_model.bin, as in transformers.
constexpr Format kFormats[] = {
    {kIndexFile, load_sharded<SafetensorsFile, &kIndexFileName>},
    {kSafetensorsFile, load_single_safetensors},
    {kBinIndexFile, load_sharded<PytorchBinFile, &kBinIndexFileName>},
    {kBinFile, load_single_bin},
};

// ---- float conversions ------------------------------------------------------------------------

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// static_cast<float> of a double beyond float's range is undefined behaviour in C++, so the
// overflow cases are decided here with IEEE round-to-nearest-even: from FLT_MAX + half an ulp
// (2^128 - 2^103, a tie that rounds to the even "2^128") up, the result is infinity.
float f64_to_f32(double d) {
  const double a = std::fabs(d);
  const float inf = std::numeric_limits<float>::infinity();
  if (a >= 0x1.ffffffp127) return d > 0 ? inf : -inf;
  if (a > FLT_MAX) return d > 0 ? FLT_MAX : -FLT_MAX;
  return static_cast<float>(d);  // NaN stays NaN; in-range values round to nearest
}

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (mant << 13));       // inf, NaN (payload kept)
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));  // rebias 15 → 127
  if (mant == 0) return bits_to_float(sign);                                      // ±0
  // Subnormal half: mant · 2^-24. Normalise into a float, which has the range to hold it exactly.
  uint32_t e = 113;  // exponent of 2^-14, the scale of the half's leading bit position, biased by 127
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return bits_to_float(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

float bf16_to_f32(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

// ---- Checkpoint -------------------------------------------------------------------------------

std::unique_ptr<Checkpoint> Checkpoint::open_dir(const std::string& dir) {
  struct stat st;
  if (dir.find('\0') != std::string::npos || ::stat(dir.c_str(), &st) != 0) {
    throw Error(codes::kWeightsNotFound, "model folder '" + dir + "' does not exist");
  }
  if (!S_ISDIR(st.st_mode))
    throw Error(codes::kWeightsNotFound, "'" + dir + "' is not a model folder (not a directory)");

  std::unique_ptr<Checkpoint> ck(new Checkpoint());
  std::string looked_for;
  for (const Format& f : kFormats) {
    const std::string path = join(dir, f.file);
    if (!path_exists(path)) {
      looked_for += std::string(looked_for.empty() ? "" : ", ") + f.file;
      continue;
    }
    ck->source_ = path;
    f.load(*ck, dir, path);
    return ck;
  }
  throw Error(codes::kWeightsNotFound, "no weights in " + dir + " (looked for " + looked_for + ")");
}

void Checkpoint::add_tensors(std::shared_ptr<const void> owner, const std::vector<TensorInfo>& tensors) {
  for (const TensorInfo& t : tensors) {
    auto [it, fresh] = by_name_.emplace(t.name, tensors_.size());
    if (!fresh) {
      throw Error(codes::kCheckpointInvalid, "tensor '" + printable(t.name) + "' is stored in both " +
                                                 file_basename(tensors_[it->second].file) + " and " +
                                                 file_basename(t.file));
    }
    tensors_.push_back(t);
  }
  owners_.push_back(std::move(owner));
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) out.push_back(t.name);
  return out;
}

std::vector<float> Checkpoint::read_f32(const TensorInfo& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F64) {
    throw Error(codes::kCheckpointInvalid, file_basename(t.file) + ": tensor '" + printable(t.name) + "' has dtype " +
                                               dtype_name(t.dtype) +
                                               ", expected a floating-point dtype (F32, F16, BF16 or F64)");
  }
  const size_t n = t.nbytes / size_of(t.dtype);
  std::vector<float> out;
  try {
    out.resize(n);
  } catch (const std::bad_alloc&) {
    throw Error(codes::kOutOfMemory,
                "cannot allocate " + std::to_string(n) + " floats for tensor '" + printable(t.name) + "'");
  }
  // t.data has no alignment guarantee (see TensorInfo), hence byte-wise loads and memcpy.
  const uint8_t* p = t.data;
  switch (t.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out.data(), p, n * sizeof(float));
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_u16(p + 2 * i));
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_u16(p + 2 * i));
      break;
    case DType::F64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, sizeof d);
        out[i] = f64_to_f32(d);
      }
      break;
    default:
      break;  // rejected above
  }
  return out;
}

}  // namespace vitmsn
