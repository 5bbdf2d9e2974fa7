#include "engine/io/pytorch_bin.h"

#include <cstring>
#include <new>

#include "common/error.h"
#include "engine/io/json.h"
#include "engine/io/pickle_reader.h"
#include "engine/io/zip_reader.h"

namespace vitmsn {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

// Copies a strided view into a dense row-major buffer (an odometer over the index space).
void gather(const uint8_t* base, size_t elem, const std::vector<int64_t>& size, const std::vector<int64_t>& stride,
            uint8_t* out, uint64_t numel) {
  std::vector<int64_t> idx(size.size(), 0);
  uint64_t src = 0;  // element offset from base
  for (uint64_t n = 0; n < numel; ++n) {
    std::memcpy(out + n * elem, base + src * elem, elem);
    for (size_t d = size.size(); d-- > 0;) {
      if (++idx[d] < size[d]) {
        src += static_cast<uint64_t>(stride[d]);
        break;
      }
      src -= static_cast<uint64_t>(stride[d]) * static_cast<uint64_t>(size[d] - 1);
      idx[d] = 0;
    }
  }
}

}  // namespace

std::unique_ptr<PytorchBinFile> PytorchBinFile::open(const std::string& path) {
  std::unique_ptr<PytorchBinFile> f(new PytorchBinFile(std::make_unique<MappedFile>(path)));
  f->parse();
  return f;
}

const TensorInfo* PytorchBinFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void PytorchBinFile::parse() {
  const std::string base = file_basename(path());
  auto fail = [&](const std::string& what) -> void { throw Error(codes::kCheckpointInvalid, base + ": " + what); };
  if (!looks_like_zip(file_->data(), file_->size())) {
    fail(
        "not a zip archive; only the torch.save format of PyTorch >= 1.6 is supported "
        "(re-save the state dict with a current torch, or convert it to safetensors)");
  }
  ZipReader zip(file_->data(), file_->size(), base);

  // torch.save puts everything under one top-level folder whose name varies ("archive", the file
  // stem, …); data.pkl identifies it.
  const ZipEntry* pkl = nullptr;
  std::string prefix;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash + 1, std::string::npos, "data.pkl") == 0) {
      if (pkl != nullptr) fail("holds more than one data.pkl");
      pkl = &e;
      prefix = e.name.substr(0, slash + 1);
    }
  }
  if (pkl == nullptr) fail("zip archive has no <archive>/data.pkl (is it a torch.save file?)");
  if (const ZipEntry* bo = zip.find(prefix + "byteorder")) {
    const std::string order(reinterpret_cast<const char*>(bo->data), bo->size);
    if (order != "little") fail("stored with byte order '" + printable(order) + "'; only little-endian is supported");
  }

  std::vector<PickledTensor> pts = read_state_dict_pickle(pkl->data, pkl->size, base + " (data.pkl)");
  tensors_.reserve(pts.size());
  for (PickledTensor& pt : pts) {
    auto bad = [&](const std::string& what) { fail("tensor '" + printable(pt.name) + "' " + what); };
    const ZipEntry* storage = zip.find(prefix + "data/" + pt.storage_key);
    if (storage == nullptr)
      bad("refers to storage '" + printable(pt.storage_key) + "', which the archive does not hold");
    const size_t elem = size_of(pt.dtype);
    uint64_t storage_bytes = 0;
    if (!mul_ok(static_cast<uint64_t>(pt.storage_numel), elem, &storage_bytes) || storage_bytes != storage->size) {
      bad("has a storage of " + std::to_string(pt.storage_numel) + " " + dtype_name(pt.dtype) +
          " elements, but entry data/" + printable(pt.storage_key) + " holds " + std::to_string(storage->size) +
          " bytes");
    }
    if (pt.size.size() != pt.stride.size())
      bad("has " + std::to_string(pt.size.size()) + " sizes but " + std::to_string(pt.stride.size()) + " strides");
    if (pt.offset < 0) bad("has a negative storage offset");
    // numel, the last element reached, and whether the strides are row-major contiguous.
    uint64_t numel = 1, last = static_cast<uint64_t>(pt.offset), expect = 1;
    bool contiguous = true, overflow = false;
    for (size_t d = pt.size.size(); d-- > 0;) {
      if (pt.size[d] < 0 || pt.stride[d] < 0)
        bad("has a negative size or stride: size " + shape_str(pt.size) + ", stride " + shape_str(pt.stride));
      const uint64_t sz = static_cast<uint64_t>(pt.size[d]), st = static_cast<uint64_t>(pt.stride[d]);
      if (sz != 1 && st != expect) contiguous = false;
      uint64_t reach = 0;
      overflow |= !mul_ok(numel, sz, &numel) || !mul_ok(expect, sz, &expect);
      if (sz > 0) overflow |= !mul_ok(sz - 1, st, &reach) || !add_ok(last, reach, &last);
    }
    if (overflow) bad("has a size " + shape_str(pt.size) + " / stride " + shape_str(pt.stride) + " that overflows");
    if (numel > 0 && last >= static_cast<uint64_t>(pt.storage_numel)) {
      bad("reaches element " + std::to_string(last) + " (offset " + std::to_string(pt.offset) + ", size " +
          shape_str(pt.size) + ", stride " + shape_str(pt.stride) + ") but its storage holds " +
          std::to_string(pt.storage_numel));
    }
    TensorInfo t;
    t.name = pt.name;
    t.dtype = pt.dtype;
    t.shape = pt.size;
    t.file = path();
    t.nbytes = static_cast<size_t>(numel * elem);
    if (numel == 0) {
      t.data = storage->data;
    } else if (contiguous) {
      t.data = storage->data + static_cast<uint64_t>(pt.offset) * elem;
    } else {
      std::vector<uint8_t> buf;
      try {
        buf.resize(t.nbytes);
      } catch (const std::bad_alloc&) {
        throw Error(codes::kOutOfMemory, base + ": cannot allocate " + std::to_string(t.nbytes) +
                                             " bytes for tensor '" + printable(pt.name) + "'");
      }
      gather(storage->data + static_cast<uint64_t>(pt.offset) * elem, elem, pt.size, pt.stride, buf.data(), numel);
      gathered_.push_back(std::move(buf));
      t.data = gathered_.back().data();
    }
    if (!by_name_.emplace(t.name, tensors_.size()).second) bad("appears twice in the state dict");
    tensors_.push_back(std::move(t));
  }
}

}  // namespace vitmsn
