// pytorch_model.bin reading at the byte level: the stored-zip reader, the restricted unpickler and
// tensor validation, on archives built here. Every hostile input must become vitmsn::Error with
// ERR_CHECKPOINT_INVALID (never a crash, hang or out-of-bounds read): refused globals and opcodes,
// deep nesting, memo cycles, truncation at every length, a byte flipped at every position.
//
//   test_engine_pytorch_bin          (VITMSN_TEST_VERBOSE=1 prints every message)
#include "tests/harness.h"
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/pickle_reader.h"
#include "engine/io/pytorch_bin.h"
#include "engine/io/zip_reader.h"

using namespace vitmsn;
using Bytes = std::string;

namespace {

std::string g_tmp;

// ---- builders ---------------------------------------------------------------------------------

void put_le(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A zip of stored entries, laid out as torch.save does (local headers, data, central directory).
// zip64: every central size/offset saturated and carried in a 0x0001 extra field, plus the zip64
// end records, as writers do for archives over 4 GiB.
Bytes make_zip(const std::vector<std::pair<std::string, Bytes>>& entries, bool zip64 = false) {
  Bytes out, cd;
  for (const auto& [name, data] : entries) {
    const uint64_t local = out.size();
    put_le(out, 0x04034b50, 4);
    put_le(out, 20, 2);
    put_le(out, 0, 2);
    put_le(out, 0, 2);
    put_le(out, 0, 4);
    put_le(out, 0, 4);
    put_le(out, data.size(), 4);
    put_le(out, data.size(), 4);
    put_le(out, name.size(), 2);
    put_le(out, 0, 2);
    out += name;
    out += data;
    put_le(cd, 0x02014b50, 4);
    put_le(cd, 20, 2);
    put_le(cd, 20, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0, 4);
    const uint64_t sat = 0xFFFFFFFFu;
    put_le(cd, 0, 4);
    put_le(cd, zip64 ? sat : data.size(), 4);
    put_le(cd, zip64 ? sat : data.size(), 4);
    put_le(cd, name.size(), 2);
    put_le(cd, zip64 ? 28 : 0, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0, 4);
    put_le(cd, zip64 ? sat : local, 4);
    cd += name;
    if (zip64) {
      put_le(cd, 0x0001, 2);
      put_le(cd, 24, 2);
      put_le(cd, data.size(), 8);
      put_le(cd, data.size(), 8);
      put_le(cd, local, 8);
    }
  }
  const uint64_t cd_off = out.size();
  out += cd;
  if (zip64) {
    const uint64_t rec = out.size();
    put_le(out, 0x06064b50, 4);
    put_le(out, 44, 8);
    put_le(out, 45, 2);
    put_le(out, 45, 2);
    put_le(out, 0, 4);
    put_le(out, 0, 4);
    put_le(out, entries.size(), 8);
    put_le(out, entries.size(), 8);
    put_le(out, cd.size(), 8);
    put_le(out, cd_off, 8);
    put_le(out, 0x07064b50, 4);
    put_le(out, 0, 4);
    put_le(out, rec, 8);
    put_le(out, 1, 4);
    put_le(out, 0x06054b50, 4);
    put_le(out, 0, 2);
    put_le(out, 0, 2);
    put_le(out, 0xFFFF, 2);
    put_le(out, 0xFFFF, 2);
    put_le(out, 0xFFFFFFFFu, 4);
    put_le(out, 0xFFFFFFFFu, 4);
    put_le(out, 0, 2);
    return out;
  }
  put_le(out, 0x06054b50, 4);
  put_le(out, 0, 2);
  put_le(out, 0, 2);
  put_le(out, entries.size(), 2);
  put_le(out, entries.size(), 2);
  put_le(out, cd.size(), 4);
  put_le(out, cd_off, 4);
  put_le(out, 0, 2);
  return out;
}

// Pickle opcodes, protocol 2, spelled as torch.save emits them.
struct P {
  Bytes b = "\x80\x02";
  P& op(char c) {
    b.push_back(c);
    return *this;
  }
  P& str(const std::string& s) {
    b.push_back('X');
    put_le(b, s.size(), 4);
    b += s;
    return *this;
  }
  P& i(int64_t v) {
    b.push_back('J');
    put_le(b, static_cast<uint64_t>(v), 4);
    return *this;
  }
  P& global(const std::string& m, const std::string& n) {
    b += "c" + m + "\n" + n + "\n";
    return *this;
  }
  P& mark() { return op('('); }
  P& tuple() { return op('t'); }
  // _rebuild_tensor_v2(('storage', <type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())
  P& tensor(const std::string& type, const std::string& key, int64_t numel, int64_t offset,
            const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", type).str(key).str("cpu").i(numel).tuple().op('Q');
    i(offset);
    mark();
    for (int64_t s : size) i(s);
    tuple();
    mark();
    for (int64_t s : stride) i(s);
    tuple();
    op('\x89').global("collections", "OrderedDict").op(')').op('R').tuple().op('R');
    return *this;
  }
  P& dict_begin() { return global("collections", "OrderedDict").op(')').op('R').mark(); }
  P& dict_end() { return op('u').op('.'); }
};

Bytes floats(const std::vector<float>& v) { return Bytes(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

std::string write(const std::string& name, const Bytes& data) {
  const std::string path = g_tmp + "/" + name;
  std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}

Bytes archive(const Bytes& pkl, std::vector<std::pair<std::string, Bytes>> storages = {}, bool zip64 = false) {
  std::vector<std::pair<std::string, Bytes>> e = {{"archive/data.pkl", pkl}};
  for (auto& [k, v] : storages) e.emplace_back("archive/data/" + k, v);
  e.emplace_back("archive/version", "3\n");
  return make_zip(e, zip64);
}

std::vector<float> read(const PytorchBinFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  if (t == nullptr) return {};
  return Checkpoint::read_f32(*t);
}

// ---- tests ------------------------------------------------------------------------------------

// A 2x3 storage s = 0..5 (F32), tensors: w = s as [2,3]; t = s transposed ([3,2] stride [1,3]);
// v = s[3:5] (offset 3, [2]); h = half storage [1.5, -2].
Bytes good_archive(bool zip64 = false) {
  P p;
  p.dict_begin();
  p.str("w").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  p.str("t").tensor("FloatStorage", "0", 6, 0, {3, 2}, {1, 3});
  p.str("v").tensor("FloatStorage", "0", 6, 3, {2}, {1});
  p.str("h").tensor("HalfStorage", "1", 2, 0, {2}, {1});
  p.str("s").tensor("FloatStorage", "0", 6, 5, {}, {});
  p.dict_end();
  Bytes half;
  put_le(half, 0x3E00, 2);  // 1.5
  put_le(half, 0xC000, 2);  // -2
  return archive(p.b, {{"0", floats({0, 1, 2, 3, 4, 5})}, {"1", half}}, zip64);
}

void test_good() {
  std::unique_ptr<PytorchBinFile> f = PytorchBinFile::open(write("good.bin", good_archive()));
  check(f->tensors().size() == 5, "good: 5 tensors");
  check(read(*f, "w") == std::vector<float>({0, 1, 2, 3, 4, 5}), "good: contiguous w");
  check(read(*f, "t") == std::vector<float>({0, 3, 1, 4, 2, 5}), "good: transposed view gathered");
  check(read(*f, "v") == std::vector<float>({3, 4}), "good: storage offset");
  check(read(*f, "h") == std::vector<float>({1.5f, -2.0f}), "good: HalfStorage");
  check(read(*f, "s") == std::vector<float>({5}), "good: 0-d tensor");
  check(f->find("w")->shape == std::vector<int64_t>({2, 3}) && f->find("t")->shape == std::vector<int64_t>({3, 2}),
        "good: shapes");
  // In place: the contiguous tensor points into the mapping, not a copy (same bytes as storage 0).
  check(f->find("w")->data + 12 == f->find("v")->data, "good: views share the mapped storage");
  // An nn.Parameter (dict(model.named_parameters()) saved as is): _rebuild_parameter(tensor, …).
  {
    P p;
    p.dict_begin().str("p").global("torch._utils", "_rebuild_parameter").mark();
    p.tensor("BFloat16Storage", "0", 1, 0, {1}, {1}).op('\x88').global("collections", "OrderedDict").op(')').op('R');
    p.tuple().op('R').dict_end();
    Bytes bf;
    put_le(bf, 0x4049, 2);  // bfloat16 3.140625
    std::unique_ptr<PytorchBinFile> pf = PytorchBinFile::open(write("param.bin", archive(p.b, {{"0", bf}})));
    check(read(*pf, "p") == std::vector<float>({3.140625f}), "nn.Parameter with BFloat16Storage");
  }
  std::unique_ptr<PytorchBinFile> z = PytorchBinFile::open(write("good64.bin", good_archive(true)));
  check(read(*z, "t") == std::vector<float>({0, 3, 1, 4, 2, 5}) && read(*z, "h") == std::vector<float>({1.5f, -2.0f}),
        "zip64 records and extra fields");
}

void test_pickles() {
  auto refuse = [](const std::string& what, const std::string& needle, const Bytes& pkl,
                   std::vector<std::pair<std::string, Bytes>> st = {}) {
    const std::string path = write("p.bin", archive(pkl, st));
    expect_error(what, codes::kCheckpointInvalid, needle, [&] { PytorchBinFile::open(path); });
  };
  refuse("GLOBAL os.system", "refusing global 'os.system'",
         P().global("os", "system").str("touch x").op('\x85').op('R').op('.').b);
  refuse("GLOBAL posix.system", "refusing global 'posix.system'", P().global("posix", "system").op('.').b);
  refuse("STACK_GLOBAL builtins.eval", "refusing global 'builtins.eval'",
         P().str("builtins").str("eval").op('\x93').op('.').b);
  refuse("_rebuild_tensor_v3 (new dtypes)", "tensor kind 'torch._utils._rebuild_tensor_v3' is not supported",
         P().global("torch._utils", "_rebuild_tensor_v3").op('.').b);
  refuse("GLOBAL torch.load", "refusing global 'torch.load'", P().global("torch", "load").op('.').b);
  refuse("REDUCE on a storage type", "REDUCE on 'torch.FloatStorage' is not allowed",
         P().global("torch", "FloatStorage").i(4).op('\x85').op('R').op('.').b);
  refuse("OrderedDict with arguments", "only OrderedDict() is allowed",
         P().global("collections", "OrderedDict").str("x").op('\x85').op('R').op('.').b);
  refuse("REDUCE on a str", "REDUCE on a str", P().str("x").op(')').op('R').op('.').b);
  refuse("INST opcode", "opcode 0x69 ('i')", P().op('i').b + "os\nsystem\n");
  refuse("OBJ opcode", "opcode 0x6f", P().mark().op('o').b);
  refuse("NEWOBJ opcode", "opcode 0x81", P().op('\x81').b);
  refuse("text PERSID", "opcode 0x50", P().b + "P0\n.");
  refuse("EXT1", "opcode 0x82", P().op('\x82').b + "\x01");
  refuse("protocol 6", "protocol 6", Bytes("\x80\x06."));
  refuse("empty pickle", "truncated", Bytes());
  refuse("STOP on an empty stack", "stack underflow", P().op('.').b);
  refuse("BINGET of an unset memo", "memo key 7", P().op('h').op('\x07').op('.').b);
  refuse("string longer than the pickle", "runs past the end",
         P().op('X').b + Bytes("\xff\xff\x00\x00"
                               "ab",
                               6));
  refuse("no STOP", "truncated", P().op(']').b);
  refuse("APPEND to a dict", "APPEND to a dict", P().op('}').op(']').op('a').op('.').b);
  refuse("SETITEM on a list", "SETITEM(S) on a list", P().op(']').str("k").str("v").op('s').op('.').b);
  refuse("BUILD on a str", "BUILD on a str", P().str("x").op('}').op('b').op('.').b);
  refuse("top level list", "top-level object is a list", P().op(']').op('.').b);
  refuse("value not a tensor", "is an int, expected a tensor", P().op('}').str("w").i(3).op('s').op('.').b);
  refuse("key not a str", "expected a str", P().op('}').i(1).i(3).op('s').op('.').b);
  // A list that contains itself: cycles must neither loop nor leak a crash.
  refuse("memo cycle", "top-level object is a list", P().op(']').op('q').op('\0').op('h').op('\0').op('a').op('.').b);
  // A million nested 1-tuples: built and freed without recursion.
  {
    P p;
    p.op('N');
    p.b += Bytes(1'000'000, '\x85');
    refuse("1e6 nested tuples", "top-level object is a tuple", p.op('.').b);
  }
  refuse("persistent id not a tuple", "persistent id is not", P().str("x").op('Q').op('.').b);
  refuse("persistent id with a non-storage type", "not a torch.*Storage",
         P().mark()
             .str("storage")
             .global("collections", "OrderedDict")
             .str("0")
             .str("cpu")
             .i(1)
             .tuple()
             .op('Q')
             .op('.')
             .b);
  // Tensor-level checks.
  const Bytes s6 = floats({0, 1, 2, 3, 4, 5});
  auto one = [&](const std::function<void(P&)>& t) {
    P p;
    p.dict_begin().str("x");
    t(p);
    return p.dict_end().b;
  };
  refuse("storage offset past the end", "reaches element 9",
         one([](P& p) { p.tensor("FloatStorage", "0", 6, 8, {2}, {1}); }), {{"0", s6}});
  refuse("strides reaching past the end", "reaches element 6", one([](P& p) {
           p.tensor("FloatStorage", "0", 6, 0, {2, 2}, {5, 1});
         }),
         {{"0", s6}});
  refuse("negative offset", "negative storage offset",
         one([](P& p) { p.tensor("FloatStorage", "0", 6, -1, {2}, {1}); }), {{"0", s6}});
  refuse("negative size", "negative size", one([](P& p) { p.tensor("FloatStorage", "0", 6, 0, {-2}, {1}); }),
         {{"0", s6}});
  refuse("size overflow", "overflows", one([](P& p) {
           p.tensor("FloatStorage", "0", 6, 0, {1 << 30, 1 << 30, 1 << 30}, {1, 1, 1});
         }),
         {{"0", s6}});
  refuse("sizes and strides differ in rank", "sizes but", one([](P& p) {
           p.tensor("FloatStorage", "0", 6, 0, {2, 3}, {1});
         }),
         {{"0", s6}});
  refuse("numel disagrees with the entry", "holds 24 bytes",
         one([](P& p) { p.tensor("FloatStorage", "0", 7, 0, {2}, {1}); }), {{"0", s6}});
  refuse("storage entry missing", "does not hold", one([](P& p) { p.tensor("FloatStorage", "9", 6, 0, {2}, {1}); }),
         {{"0", s6}});
  refuse("duplicate key", "appears twice",
         P().dict_begin()
             .str("x")
             .tensor("FloatStorage", "0", 6, 0, {2}, {1})
             .str("x")
             .tensor("FloatStorage", "0", 6, 0, {2}, {1})
             .dict_end()
             .b,
         {{"0", s6}});
}

void test_archives() {
  const Bytes good = good_archive();
  auto refuse = [](const std::string& what, const std::string& needle, const Bytes& data) {
    const std::string path = write("z.bin", data);
    expect_error(what, codes::kCheckpointInvalid, needle, [&] { PytorchBinFile::open(path); });
  };
  refuse("legacy format", "not a zip archive",
         Bytes("\x80\x02\x8a\x0a"
               "l\xfc\x9c"
               "F\xf9 j\xa8"
               "P\x19.",
               15));
  refuse("empty file", "not a zip archive", Bytes());
  refuse("no data.pkl", "no <archive>/data.pkl", make_zip({{"archive/other", "x"}}));
  refuse("two data.pkl", "more than one data.pkl", make_zip({{"a/data.pkl", "."}, {"b/data.pkl", "."}}));
  refuse("big-endian", "byte order 'big'", make_zip({{"a/data.pkl", "\x80\x02}."}, {"a/byteorder", "big"}}));
  refuse("duplicate entry", "appears twice", make_zip({{"a/data.pkl", "\x80\x02}."}, {"a/data.pkl", "\x80\x02}."}}));
  {
    Bytes z = good;
    const size_t cd = z.find("PK\x01\x02");
    z[cd + 10] = 8;  // deflate
    refuse("compressed entry", "is compressed", z);
    z = good;
    z[cd + 8] = 1;  // encrypted
    refuse("encrypted entry", "is encrypted", z);
    z = good;
    z[cd + 42] = static_cast<char>(0xF0);  // local header offset → garbage
    refuse("bad local header offset", "no local header", z);
    z = good;
    z[cd + 27] = 0x7F;  // sizes of 2 GiB
    z[cd + 23] = 0x7F;
    refuse("entry past the end", "extends past the end", z);
  }
  for (const Bytes& good : {good_archive(false), good_archive(true)}) {
    // Truncation at every length, and one flipped byte at every position: an Error or a valid load,
    // never a crash (run under ASan/UBSan to check reads too).
    int errors = 0, loads = 0;
    for (size_t n = 0; n < good.size(); ++n) {
      try {
        PytorchBinFile::open(write("t.bin", good.substr(0, n)));
        ++loads;
      } catch (const Error&) {
        ++errors;
      }
    }
    check(errors == static_cast<int>(good.size()) && loads == 0, "every truncation is an Error");
    errors = loads = 0;
    for (size_t i = 0; i < good.size(); ++i) {
      for (unsigned char x : {0x01, 0x80, 0xFF}) {
        Bytes z = good;
        z[i] = static_cast<char>(z[i] ^ x);
        try {
          PytorchBinFile::open(write("f.bin", z));
          ++loads;
        } catch (const Error&) {
          ++errors;
        }
      }
    }
    check(errors + loads == static_cast<int>(3 * good.size()) && errors > 0, "every flipped byte loads or is an Error");
    if (g_verbose) std::printf("flips: %d errors, %d loads\n", errors, loads);
  }
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/vitmsn-bin-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 2;
  g_tmp = tmpl;
  try {
    test_good();
    test_pickles();
    test_archives();
  } catch (const std::exception& e) {
    check(false, std::string("unexpected exception: ") + e.what());
  }
  std::filesystem::remove_all(g_tmp);
  return finish();
}
