// Checkpoint reading: the JSON parser, safetensors validation (every malformed case must become an
// Error with the right code, never a crash), float conversions, sharded folders, and the real
// fixture. Standalone: writes its files into a fresh mkdtemp folder and removes it at the end.
//
//   test_checkpoint [path/to/model.safetensors]     (VITMSN_TEST_VERBOSE=1 prints every message)
#include "tests/harness.h"
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/json.h"
#include "engine/io/safetensors.h"

using namespace vitmsn;

namespace {

// ---- helpers ----------------------------------------------------------------------------------

std::string g_tmp;  // the mkdtemp folder; every file this test writes is under it

// `text` must be rejected by parse_json with a message containing `needle`.
void expect_json_error(const std::string& what, const std::string& text, const std::string& needle) {
  try {
    parse_json(text);
    check(false, "json " + what, "accepted");
  } catch (const JsonError& e) {
    check(std::string(e.what()).find(needle) != std::string::npos, "json " + what,
          std::string("\"") + e.what() + "\" (want \"" + needle + "\")");
  } catch (const std::exception& e) {
    check(false, "json " + what, std::string("wrong exception type: ") + e.what());
  }
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// ---- file builders ----------------------------------------------------------------------------

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// A safetensors file: length prefix, header (space-padded to 8 bytes as writers do), data.
std::string st_bytes(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return u64le(header.size()) + header + data;
}

std::string path_in(const std::string& rel) { return g_tmp + "/" + rel; }

void write_file(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A fresh folder under the temp dir.
std::string make_dir(const std::string& rel) {
  const std::string d = path_in(rel);
  std::filesystem::create_directories(d);
  return d;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A one-tensor header entry.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

int g_file_counter = 0;

// Writes a one-off safetensors file and opens it.
std::unique_ptr<SafetensorsFile> open_bytes(const std::string& bytes) {
  const std::string p = path_in("case" + std::to_string(++g_file_counter) + ".safetensors");
  write_file(p, bytes);
  return SafetensorsFile::open(p);
}

// A malformed header (with `data` bytes after it) must be rejected as kCheckpointInvalid.
void expect_bad_header(const std::string& what, const std::string& header, const std::string& data,
                       const std::string& needle) {
  expect_error("safetensors " + what, codes::kCheckpointInvalid, needle, [&] { open_bytes(st_bytes(header, data)); });
}

// ---- JSON -------------------------------------------------------------------------------------

void test_json() {
  {
    JsonValue v = parse_json(" {\"b\": [1, -2.5, true, false, null], \"a\": {\"x\": \"y\"}, \"c\": 3} \n");
    check(v.is_object() && v.size() == 3, "json object size");
    check(v.keys()[0] == "b" && v.keys()[1] == "a" && v.keys()[2] == "c", "json insertion order");
    const JsonValue* b = v.find("b");
    check(b && b->is_array() && b->items().size() == 5, "json array");
    check(b->items()[0].is_integer() && b->items()[0].as_int64() == 1, "json int");
    check(b->items()[1].is_number() && !b->items()[1].is_integer() && b->items()[1].as_double() == -2.5, "json double");
    check(b->items()[2].as_bool() && !b->items()[3].as_bool() && b->items()[4].is_null(), "json literals");
    check(v.find("a")->find("x")->as_string() == "y", "json nested lookup");
    check(v.find("zzz") == nullptr, "json missing key");
    check(parse_json("[]").items().empty() && parse_json("{}").size() == 0, "json empty containers");
    check(parse_json("\"\"").as_string().empty(), "json empty string");
  }
  // Escapes, \u, surrogate pairs, raw UTF-8.
  check(parse_json(R"("\"\\\/\b\f\n\r\t")").as_string() == "\"\\/\b\f\n\r\t", "json simple escapes");
  check(parse_json(R"("\u0041\u00e9\u20AC")").as_string() == "A\xC3\xA9\xE2\x82\xAC", "json \\u escapes");
  check(parse_json(R"("\uD83D\uDE00")").as_string() == "\xF0\x9F\x98\x80", "json surrogate pair");
  check(parse_json(R"("\uDBFF\uDFFF")").as_string() == "\xF4\x8F\xBF\xBF", "json max surrogate pair");
  check(parse_json(R"("a\u0000b")").as_string() == std::string("a\0b", 3), "json \\u0000");
  check(parse_json("\"\xC3\xA9\xF0\x9F\x98\x80\"").as_string() == "\xC3\xA9\xF0\x9F\x98\x80", "json raw UTF-8");
  expect_json_error("lone high surrogate", R"("\uD800")", "surrogate");
  expect_json_error("high surrogate then letter", R"("\uD800x")", "surrogate");
  expect_json_error("high surrogate then non-low", R"("\uD800\u0041")", "surrogate");
  expect_json_error("lone low surrogate", R"("\uDC00")", "surrogate");
  expect_json_error("bad hex", R"("\u12G4")", "hex");
  expect_json_error("truncated \\u", R"("\u12)", "");
  expect_json_error("bad escape", R"("\x")", "escape");
  expect_json_error("control char", "\"a\nb\"", "control");
  expect_json_error("unterminated string", "\"abc", "unterminated");
  expect_json_error("invalid UTF-8 byte", "\"\xFF\"", "UTF-8");
  expect_json_error("overlong UTF-8", "\"\xC0\x80\"", "UTF-8");
  expect_json_error("overlong 3-byte UTF-8", "\"\xE0\x80\x80\"", "UTF-8");
  expect_json_error("UTF-8 surrogate", "\"\xED\xA0\x80\"", "UTF-8");
  expect_json_error("truncated UTF-8", "\"\xE2\x82\"", "UTF-8");

  // Numbers: exact int64, big integers beyond 2^53, and strict grammar.
  {
    JsonValue v = parse_json(
        "[9007199254740993, 9223372036854775807, -9223372036854775808, 9223372036854775808, "
        "-0, 1e2, 1.0, 0.5e-3, 1E+2]");
    const auto& a = v.items();
    check(a[0].is_integer() && a[0].as_int64() == 9007199254740993LL, "json 2^53+1 exact");
    check(a[1].is_integer() && a[1].as_int64() == std::numeric_limits<int64_t>::max(), "json int64 max");
    check(a[2].is_integer() && a[2].as_int64() == std::numeric_limits<int64_t>::min(), "json int64 min");
    check(!a[3].is_integer() && a[3].is_number() && a[3].as_double() == 9223372036854775808.0, "json 2^63 is a double");
    check(a[4].is_integer() && a[4].as_int64() == 0, "json -0");
    check(!a[5].is_integer() && a[5].as_double() == 100, "json 1e2 not an integer literal");
    check(!a[6].is_integer() && a[6].as_double() == 1, "json 1.0 not an integer literal");
    check(a[7].as_double() == 0.5e-3 && a[8].as_double() == 100, "json exponents");
  }
  expect_json_error("leading zero", "01", "leading zero");
  expect_json_error("bare minus", "-", "digit");
  expect_json_error("plus sign", "+1", "unexpected character");
  expect_json_error("trailing dot", "1.", "decimal point");
  expect_json_error("leading dot", ".5", "unexpected character");
  expect_json_error("empty exponent", "1e", "exponent");
  expect_json_error("NaN", "NaN", "unexpected character");
  expect_json_error("Infinity", "-Infinity", "digit");
  expect_json_error("out of range", "1e400", "out of range");
  expect_json_error("hex number", "0x10", "trailing");

  // Structure.
  expect_json_error("empty input", "", "end of input");
  expect_json_error("whitespace only", " \n\t", "end of input");
  expect_json_error("trailing garbage", "{} x", "trailing");
  expect_json_error("two values", "1 2", "trailing");
  expect_json_error("extra brace", "{}}", "trailing");
  expect_json_error("trailing comma array", "[1,]", "unexpected character");
  expect_json_error("trailing comma object", "{\"a\":1,}", "key");
  expect_json_error("missing colon", "{\"a\" 1}", "':'");
  expect_json_error("unquoted key", "{a:1}", "key");
  expect_json_error("single quotes", "'a'", "unexpected character");
  expect_json_error("bad literal", "tru", "literal");
  expect_json_error("unclosed array", "[1, 2", "end of input");
  expect_json_error("unclosed object", "{\"a\": 1", "end of input");
  expect_json_error("duplicate key", "{\"a\": 1, \"a\": 2}", "duplicate key 'a'");
  expect_json_error("comment", "{} // x", "trailing");
  expect_json_error("NUL byte", std::string("{}\0", 3), "trailing");

  // Depth: 64 levels are fine, 65 are not, and absurd depth fails cleanly (no stack overflow).
  check(parse_json(std::string(64, '[') + std::string(64, ']')).is_array(), "json depth 64 accepted");
  expect_json_error("depth 65", std::string(65, '[') + std::string(65, ']'), "nesting deeper than 64");
  expect_json_error("depth 1e6", std::string(1000000, '['), "nesting deeper");
  std::string deep_obj;
  for (int i = 0; i < 100000; ++i) deep_obj += "{\"a\":";
  expect_json_error("deep objects", deep_obj, "nesting deeper");
  check(parse_json("[[1]]", 2).is_array(), "json custom depth ok");
  try {
    parse_json("[[[1]]]", 2);
    check(false, "json custom depth 2 rejects 3 levels");
  } catch (const JsonError&) {
    check(true, "json custom depth 2 rejects 3 levels");
  }
}

// ---- valid safetensors ------------------------------------------------------------------------

void test_valid_file() {
  // Odd-sized tensors first so that later ones start at unaligned offsets.
  const std::vector<uint8_t> u8 = {1, 2, 255};
  const std::vector<int32_t> i32 = {-7, 1 << 30};
  const std::vector<float> f32 = {1.5f, -2.25f, 0.0f, 3.0e-40f /* subnormal */, 1e30f, -0.0f};
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x0001, 0x7BFF};  // 1, -2, 2^-24, 65504
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC040};                 // 1, -3
  const std::vector<double> f64 = {0.1};
  const std::vector<int64_t> i64 = {-(int64_t(1) << 60)};
  const std::vector<int16_t> i16 = {-300};
  const std::vector<int8_t> i8 = {-5, 6};
  std::string data;
  std::string header = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"\\u00e9\"},";
  auto add = [&](const std::string& name, const std::string& dtype, const std::string& shape,
                 const std::string& bytes) {
    header += entry(name, dtype, shape, data.size(), data.size() + bytes.size()) + ",";
    data += bytes;
  };
  add("u8", "U8", "[3]", raw(u8));
  add("i32", "I32", "[2]", raw(i32));
  add("f32", "F32", "[2,3]", raw(f32));
  add("f16", "F16", "[2,2]", raw(f16));
  add("bf16", "BF16", "[2]", raw(bf16));
  add("scalar", "F64", "[]", raw(f64));
  add("i64", "I64", "[1,1]", raw(i64));
  add("i16", "I16", "[1]", raw(i16));
  add("i8", "I8", "[2]", raw(i8));
  add("flag", "BOOL", "[1]", std::string(1, '\1'));
  add("empty", "F32", "[0,4]", "");
  header += entry("empty_too", "BOOL", "[3,0]", 0, 0) + "}";  // an empty tensor may sit at any tensor boundary

  std::unique_ptr<SafetensorsFile> f;
  expect_no_error("valid file opens", [&] { f = open_bytes(st_bytes(header, data)); });
  if (!f) return;
  check(f->tensors().size() == 12, "valid: 12 tensors (metadata skipped)");
  check(f->tensors()[0].name == "u8" && f->tensors()[11].name == "empty_too", "valid: header order");
  check(f->metadata().size() == 2 && f->metadata().at("format") == "pt" && f->metadata().at("note") == "\xC3\xA9",
        "valid: metadata");
  check(f->find("__metadata__") == nullptr && f->find("nope") == nullptr, "valid: metadata is not a tensor");

  const TensorInfo* t = f->find("f32");
  check(t && t->dtype == DType::F32 && t->shape == std::vector<int64_t>{2, 3} && t->nbytes == 24, "valid: f32 info");
  check(t && std::memcmp(t->data, f32.data(), 24) == 0, "valid: f32 data points at the bytes");
  check(t && reinterpret_cast<uintptr_t>(t->data) % 4 != 0, "valid: f32 data is unaligned here (test covers it)");
  check(t && Checkpoint::read_f32(*t) == f32, "valid: read_f32 of unaligned F32");

  const TensorInfo* s = f->find("scalar");
  check(s && s->shape.empty() && s->nbytes == 8 && s->dtype == DType::F64, "valid: 0-d tensor");
  check(s && Checkpoint::read_f32(*s) == std::vector<float>{0.1f}, "valid: 0-d F64 reads as 0.1f");

  const TensorInfo* e = f->find("empty");
  check(e && e->nbytes == 0 && e->shape == std::vector<int64_t>{0, 4}, "valid: empty tensor");
  check(e && Checkpoint::read_f32(*e).empty(), "valid: empty tensor reads as no floats");

  const TensorInfo* h = f->find("f16");
  check(h && Checkpoint::read_f32(*h) == std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f},
        "valid: F16 values");
  const TensorInfo* b = f->find("bf16");
  check(b && Checkpoint::read_f32(*b) == std::vector<float>{1.0f, -3.0f}, "valid: BF16 values");

  struct Want {
    const char* name;
    DType d;
    size_t nbytes;
  };
  const Want wants[] = {{"u8", DType::U8, 3},         {"i32", DType::I32, 8}, {"i64", DType::I64, 8},
                        {"i16", DType::I16, 2},       {"i8", DType::I8, 2},   {"flag", DType::BOOL, 1},
                        {"empty_too", DType::BOOL, 0}};
  for (const Want& w : wants) {
    const TensorInfo* x = f->find(w.name);
    check(x && x->dtype == w.d && x->nbytes == w.nbytes, std::string("valid: ") + w.name + " info");
  }
  const TensorInfo* i = f->find("i64");
  int64_t got = 0;
  if (i) std::memcpy(&got, i->data, 8);
  check(got == i64[0], "valid: i64 bytes");
  if (i) {
    expect_error("read_f32 of I64", codes::kCheckpointInvalid, "has dtype I64, expected a floating-point dtype",
                 [&] { Checkpoint::read_f32(*i); });
  }
  if (const TensorInfo* x = f->find("u8")) {
    expect_error("read_f32 of U8", codes::kCheckpointInvalid, "dtype U8", [&] { Checkpoint::read_f32(*x); });
  }

  // Offsets near 2^63 are parsed exactly (a double would round them) and then rejected as out of range.
  expect_bad_header("offsets beyond 2^53 exact",
                    "{" + entry("x", "U8", "[1]", 9007199254740993ULL, 9007199254740994ULL) + "}", "",
                    "data_offsets [9007199254740993, 9007199254740994] exceed the data section (0 bytes)");

  // A header with no tensors at all is a valid (empty) file; so is one with only metadata.
  expect_no_error("empty header object",
                  [&] { check(open_bytes(st_bytes("{}", ""))->tensors().empty(), "no tensors"); });
  expect_no_error("metadata-only header",
                  [&] { check(open_bytes(st_bytes("{\"__metadata__\":{}}", ""))->tensors().empty(), "no tensors 2"); });
  // Unpadded header and extra unknown fields in an entry are fine.
  expect_no_error("unpadded header, extra fields", [&] {
    const std::string hdr = "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":[1]}}";
    auto g = open_bytes(u64le(hdr.size()) + hdr + "Z");
    check(g->find("x") && g->find("x")->data[0] == 'Z', "unpadded header data");
  });
  // Shapes with a zero dim never overflow, however large the other dims.
  expect_no_error("zero dim with huge dims", [&] {
    open_bytes(st_bytes("{" + entry("z", "F64", "[0,4611686018427387904,4611686018427387904]", 0, 0) + "}", ""));
  });
}

// ---- conversions ------------------------------------------------------------------------------

// Independent reference for half → float: the value formula, evaluated in double.
double f16_reference(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
  if (exp == 31) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  return sign * std::ldexp(static_cast<double>(1024 + mant), exp - 25);
}

void test_conversions() {
  // Every one of the 65536 halfs converts exactly (NaNs to NaNs with the payload kept).
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = f16_to_f32(static_cast<uint16_t>(h));
    const double want = f16_reference(static_cast<uint16_t>(h));
    uint32_t bits;
    std::memcpy(&bits, &got, 4);
    if (std::isnan(want)) {
      if (!std::isnan(got) || ((bits >> 13) & 0x3FF) != (h & 0x3FF) || (bits >> 31) != (h >> 15)) ++bad;
    } else if (static_cast<double>(got) != want || std::signbit(got) != ((h >> 15) != 0)) {
      ++bad;
    }
  }
  check(bad == 0, "f16: all 65536 values exact (" + std::to_string(bad) + " wrong)");
  check(same_bits(f16_to_f32(0x8000), -0.0f), "f16: -0");
  check(f16_to_f32(0x03FF) == std::ldexp(1023.0f, -24), "f16: largest subnormal");
  check(f16_to_f32(0x0400) == std::ldexp(1.0f, -14), "f16: smallest normal");
  check(f16_to_f32(0x7C00) == HUGE_VALF && f16_to_f32(0xFC00) == -HUGE_VALF, "f16: infinities");
  check(std::isnan(f16_to_f32(0x7E00)), "f16: NaN");

  // bfloat16 is the top half of a float: spot values including subnormal, inf, NaN.
  check(bf16_to_f32(0x3F80) == 1.0f && bf16_to_f32(0xC000) == -2.0f, "bf16: 1, -2");
  check(bf16_to_f32(0x0001) == std::ldexp(1.0f, -133), "bf16: smallest subnormal");
  check(bf16_to_f32(0x7F7F) == std::ldexp(255.0f, 120), "bf16: largest finite");
  check(bf16_to_f32(0x7F80) == HUGE_VALF && bf16_to_f32(0xFF80) == -HUGE_VALF, "bf16: infinities");
  check(std::isnan(bf16_to_f32(0x7FC1)) && same_bits(bf16_to_f32(0x8000), -0.0f), "bf16: NaN, -0");
  int bad_bf = 0;
  for (uint32_t v = 0; v < 65536; ++v) {
    const float got = bf16_to_f32(static_cast<uint16_t>(v));
    uint32_t bits;
    std::memcpy(&bits, &got, 4);
    if (bits != v << 16) ++bad_bf;
  }
  check(bad_bf == 0, "bf16: all 65536 values exact");

  // float64 → float32 rounds to nearest even; overflow decided without undefined behaviour.
  const double kHalfUlpAboveMax = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);
  const std::vector<double> f64 = {0.1,
                                   -1e300,
                                   1e300,
                                   1.0 + std::ldexp(1.0, -24),
                                   1.0 + 3 * std::ldexp(1.0, -24),
                                   1e-50,
                                   -1e-50,
                                   FLT_MAX,
                                   std::nextafter(kHalfUlpAboveMax, 0.0),
                                   kHalfUlpAboveMax,
                                   -kHalfUlpAboveMax,
                                   std::numeric_limits<double>::quiet_NaN(),
                                   HUGE_VAL,
                                   1e-40,
                                   -0.0};
  const std::vector<float> want = {0.1f,
                                   -HUGE_VALF,
                                   HUGE_VALF,
                                   1.0f,
                                   1.0f + std::ldexp(1.0f, -22),
                                   0.0f,
                                   -0.0f,
                                   FLT_MAX,
                                   FLT_MAX,
                                   HUGE_VALF,
                                   -HUGE_VALF,
                                   std::numeric_limits<float>::quiet_NaN(),
                                   HUGE_VALF,
                                   1e-40f,
                                   -0.0f};
  // Through the file path, unaligned (offset 1 after a U8).
  std::string data = "X" + raw(f64);
  const std::string header = "{" + entry("pad", "U8", "[1]", 0, 1) + "," +
                             entry("d", "F64", "[" + std::to_string(f64.size()) + "]", 1, data.size()) + "}";
  std::unique_ptr<SafetensorsFile> f;
  expect_no_error("f64 file opens", [&] { f = open_bytes(st_bytes(header, data)); });
  if (f && f->find("d")) {
    std::vector<float> got = Checkpoint::read_f32(*f->find("d"));
    check(got.size() == want.size(), "f64: count");
    for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
      const bool ok = std::isnan(want[i]) ? std::isnan(got[i]) : same_bits(got[i], want[i]);
      check(ok, "f64[" + std::to_string(i) + "] = " + std::to_string(f64[i]) + " → " + std::to_string(got[i]));
    }
  }
}

// ---- malformed safetensors --------------------------------------------------------------------

void test_malformed_files() {
  const char* kBad = codes::kCheckpointInvalid;
  const std::string good_hdr = "{" + entry("x", "F32", "[2]", 0, 8) + "}";
  const std::string eight(8, '\0');

  expect_error("empty file", kBad, "file is empty", [&] { open_bytes(""); });
  expect_error("3-byte file", kBad, "3 bytes, shorter than the 8-byte header length", [&] { open_bytes("abc"); });
  expect_error("7-byte file", kBad, "shorter", [&] { open_bytes("1234567"); });
  expect_error("header length past EOF", kBad, "header length 1000 runs past the end of the file (24 bytes)",
               [&] { open_bytes(u64le(1000) + std::string(16, ' ')); });
  expect_error("header length 2^63", kBad, "header length 9223372036854775808 runs past",
               [&] { open_bytes(u64le(uint64_t(1) << 63) + "{}"); });
  expect_error("header length 2^64-1", kBad, "runs past", [&] { open_bytes(u64le(~uint64_t(0)) + "{}"); });
  expect_error("header length 0", kBad, "header is not valid JSON", [&] { open_bytes(u64le(0) + eight); });
  // A header over the size cap inside a (sparse, cheap) file that is big enough to hold it.
  expect_error("header over the size cap", kBad, "exceeds the 100000000-byte limit", [&] {
    const std::string p = path_in("huge_header.safetensors");
    write_file(p, u64le(kSafetensorsMaxHeader + 1) + "{");
    if (::truncate(p.c_str(), static_cast<off_t>(kSafetensorsMaxHeader + 64)) != 0)
      throw std::runtime_error("truncate");
    SafetensorsFile::open(p);
  });
  expect_error("truncated header", kBad, "header length 56 runs past the end of the file (40 bytes)",
               [&] { open_bytes(st_bytes(good_hdr, std::string(8, 'd')).substr(0, 40)); });
  expect_error("truncated data", kBad, "data_offsets [0, 8] exceed the data section (4 bytes)",
               [&] { open_bytes(st_bytes(good_hdr, std::string(4, 'd'))); });

  expect_bad_header("non-JSON header", "{\"x\": ", eight,
                    "header is not valid JSON (at byte 16 of the file: unexpected end of input (expected a value))");
  expect_bad_header("binary header", std::string("\x01\x02\x03\x04", 4), eight, "header is not valid JSON");
  expect_bad_header("array header", "[1,2,3]", eight, "header is an array, expected a JSON object");
  expect_bad_header("null header", "null", eight, "header is null");
  expect_bad_header("string header", "\"abc\"", eight, "header is a string");
  expect_bad_header("header trailing garbage", good_hdr + "}", eight, "trailing");
  expect_bad_header("duplicate tensor", "{" + entry("x", "U8", "[1]", 0, 1) + "," + entry("x", "U8", "[1]", 1, 2) + "}",
                    eight, "duplicate key 'x'");
  expect_bad_header("invalid UTF-8 in header", "{\"\xFF\":{}}", eight, "UTF-8");
  std::string deep = "{\"x\":";
  for (int i = 0; i < 5000; ++i) deep += "[";
  expect_bad_header("deeply nested header", deep, eight, "nesting deeper than 64");

  expect_bad_header("entry not object", "{\"x\": 5}", eight, "tensor 'x' is an integer, expected an object");
  expect_bad_header("entry array", "{\"x\": []}", eight, "tensor 'x' is an array, expected an object");
  // dtype
  expect_bad_header("missing dtype", "{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", eight,
                    "tensor 'x' has no 'dtype'");
  expect_bad_header("dtype not string", "{\"x\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", eight,
                    "dtype is an integer, expected a string");
  expect_bad_header("unknown dtype", "{" + entry("x", "Q4", "[2]", 0, 8) + "}", eight, "unknown dtype 'Q4'");
  expect_bad_header("lowercase dtype", "{" + entry("x", "f32", "[2]", 0, 8) + "}", eight, "unknown dtype 'f32'");
  expect_bad_header("F8_E4M3 dtype", "{" + entry("x", "F8_E4M3", "[8]", 0, 8) + "}", eight,
                    "unsupported dtype 'F8_E4M3' (supported: F64, F32, F16, BF16");
  expect_bad_header("U32 dtype", "{" + entry("x", "U32", "[2]", 0, 8) + "}", eight, "unsupported dtype 'U32'");
  // shape
  expect_bad_header("missing shape", "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", eight, "has no 'shape'");
  expect_bad_header("shape not array", "{" + entry("x", "F32", "2", 0, 8) + "}", eight,
                    "shape is an integer, expected an array");
  expect_bad_header("shape null", "{" + entry("x", "F32", "null", 0, 8) + "}", eight, "shape is null");
  expect_bad_header("negative shape", "{" + entry("x", "F32", "[-2]", 0, 8) + "}", eight,
                    "shape[0] is -2, expected a non-negative integer");
  expect_bad_header("fractional shape", "{" + entry("x", "F32", "[1,1.5]", 0, 8) + "}", eight,
                    "shape[1] is a number, expected a non-negative integer");
  expect_bad_header("exponent shape", "{" + entry("x", "F32", "[2e0]", 0, 8) + "}", eight, "shape[0] is a number");
  expect_bad_header("string shape", "{" + entry("x", "F32", "[\"2\"]", 0, 8) + "}", eight, "shape[0] is a string");
  expect_bad_header("shape beyond int64", "{" + entry("x", "F32", "[18446744073709551616]", 0, 8) + "}", eight,
                    "shape[0] is a number");
  expect_bad_header("shape product overflow", "{" + entry("x", "F32", "[4294967296,4294967296]", 0, 8) + "}", eight,
                    "shape [4294967296, 4294967296] has too many elements");
  expect_bad_header("shape × dtype overflow", "{" + entry("x", "F64", "[2305843009213693952]", 0, 8) + "}", eight,
                    "has too many elements");
  // data_offsets
  expect_bad_header("missing offsets", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight, "has no 'data_offsets'");
  expect_bad_header("offsets one element", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", eight,
                    "data_offsets is an array of length 1, expected [begin, end]");
  expect_bad_header("offsets three elements", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}",
                    eight, "an array of length 3");
  expect_bad_header("offsets object", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", eight,
                    "data_offsets is an object");
  expect_bad_header("negative offset", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", eight,
                    "non-negative integers below 2^63 (found -8)");
  expect_bad_header("fractional offset", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", eight,
                    "(found a number)");
  expect_bad_header("offset 2^64-1",
                    "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]}}", eight,
                    "(found a number)");
  expect_bad_header("offsets beyond data", "{" + entry("x", "F32", "[25]", 0, 100) + "}", std::string(64, 'd'),
                    "tensor 'x' data_offsets [0, 100] exceed the data section (64 bytes)");
  expect_bad_header("begin > end", "{" + entry("x", "F32", "[1]", 8, 4) + "}", eight,
                    "data_offsets [8, 4] have begin after end");
  expect_bad_header("size mismatch", "{" + entry("x", "F32", "[3]", 0, 8) + "}", eight,
                    "tensor 'x' is F32 with shape [3] (12 bytes) but data_offsets [0, 8] span 8 bytes");
  expect_bad_header("size mismatch 0-d", "{" + entry("x", "F16", "[]", 0, 4) + "}", eight, "(2 bytes) but");
  // overlaps
  const std::string sixteen(16, 'd');
  expect_bad_header("overlapping tensors",
                    "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", sixteen,
                    "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
  expect_bad_header("identical ranges",
                    "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "U8", "[8]", 0, 8) + "}", sixteen,
                    "overlap");
  expect_bad_header("nested range",
                    "{" + entry("b", "U8", "[2]", 4, 6) + "," + entry("a", "U8", "[16]", 0, 16) + "," +
                        entry("c", "U8", "[2]", 10, 12) + "}",
                    sixteen, "overlap");
  expect_bad_header("range inside an earlier long one",
                    "{" + entry("a", "U8", "[10]", 0, 10) + "," + entry("b", "U8", "[2]", 2, 4) + "," +
                        entry("c", "U8", "[4]", 8, 12) + "}",
                    sixteen, "tensors 'a' [0, 10] and 'b' [2, 4] overlap");
  expect_no_error("adjacent and empty tensors do not overlap", [&] {
    open_bytes(st_bytes("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[8]", 8, 16) + "," +
                            entry("e", "U8", "[0]", 8, 8) + "," + entry("f", "U8", "[0]", 16, 16) + "}",
                        sixteen));
  });
  // The tensors must cover the data section exactly, as the reference reader (Rust safetensors)
  // requires: sorted by offsets, from 0, each starting where the previous one ends, the last one
  // ending at the end of the file. An empty tensor inside another's bytes is refused there too.
  expect_bad_header("empty tensor inside another",
                    "{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[8]", 8, 16) + "," +
                        entry("e", "U8", "[0]", 4, 4) + "}",
                    sixteen, "tensors 'a' [0, 8] and 'e' [4, 4] overlap");
  expect_bad_header("gap between tensors",
                    "{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[8]", 8, 16) + "}", sixteen,
                    "bytes [4, 8] of the data section (16 bytes) belong to no tensor");
  expect_bad_header("first tensor not at 0", "{" + entry("b", "U8", "[8]", 8, 16) + "}", sixteen,
                    "bytes [0, 8] of the data section (16 bytes) belong to no tensor");
  expect_bad_header("bytes after the last tensor", "{" + entry("a", "U8", "[8]", 0, 8) + "}", sixteen,
                    "bytes [8, 16] of the data section (16 bytes) belong to no tensor");
  expect_bad_header("data but no tensors", "{}", sixteen,
                    "bytes [0, 16] of the data section (16 bytes) belong to no tensor");
  expect_bad_header("data but only empty tensors", "{" + entry("e", "U8", "[0]", 0, 0) + "}", sixteen,
                    "bytes [0, 16] of the data section");
  // A header length one too small still parses (its padding space is dropped), and then every
  // tensor would be read one byte early: the data section's extra byte gives it away.
  expect_error("header length one too small", kBad, "bytes [8, 9] of the data section (9 bytes) belong to no tensor",
               [&] {
                 const std::string h = "{" + entry("x", "U8", "[8]", 0, 8) + "}  ";
                 open_bytes(u64le(h.size() - 1) + h + std::string(8, 'd'));
               });
  // __metadata__
  expect_bad_header("metadata not object", "{\"__metadata__\": [1]}", eight, "__metadata__ is an array");
  expect_bad_header("metadata value not string", "{\"__metadata__\": {\"k\": 1}}", eight,
                    "__metadata__ value 'k' is an integer, expected a string");

  // Not a regular file / missing.
  expect_error("missing file", codes::kWeightsNotFound, "no such file",
               [&] { SafetensorsFile::open(path_in("does_not_exist.safetensors")); });
  expect_error("directory as file", kBad, "is not a regular file",
               [&] { SafetensorsFile::open(make_dir("a_dir.safetensors")); });
  const std::string fifo = path_in("fifo.safetensors");
  if (::mkfifo(fifo.c_str(), 0600) == 0) {
    expect_error("FIFO as file (no hang)", kBad, "is not a regular file", [&] { SafetensorsFile::open(fifo); });
  }
  expect_error("MappedFile on a missing path", codes::kWeightsNotFound, "no such file",
               [&] { MappedFile m(path_in("nope/nope")); });
  expect_no_error("MappedFile of a 0-byte file", [&] {
    write_file(path_in("zero.bin"), "");
    MappedFile m(path_in("zero.bin"));
    check(m.size() == 0 && m.data() == nullptr, "0-byte mapping");
  });

  // The exact message shape promised for consumers: file name, tensor, field, numbers.
  const std::string dir = make_dir("exact_message");
  write_file(dir + "/model.safetensors", st_bytes("{" + entry("x", "U8", "[100]", 0, 100) + "}", std::string(64, 'd')));
  expect_error("exact message", kBad, "", [&] {
    try {
      SafetensorsFile::open(dir + "/model.safetensors");
    } catch (const Error& e) {
      check(std::string(e.what()) ==
                "model.safetensors: tensor 'x' data_offsets [0, 100] exceed the data section (64 bytes)",
            std::string("exact message text: ") + e.what());
      throw;
    }
  });
}

// ---- model folders ----------------------------------------------------------------------------

// Writes a small shard holding the given F32 tensors (values i + base).
std::string shard_bytes(const std::vector<std::string>& names, float base) {
  std::string header = "{", data;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::vector<float> v = {base + static_cast<float>(i), -(base + static_cast<float>(i))};
    header += (i ? "," : "") + entry(names[i], "F32", "[2]", data.size(), data.size() + 8);
    data += raw(v);
  }
  return st_bytes(header + "}", data);
}

std::string index_json(const std::vector<std::pair<std::string, std::string>>& map) {
  std::string s = "{\"metadata\":{\"total_size\":0},\"weight_map\":{";
  for (size_t i = 0; i < map.size(); ++i) s += (i ? "," : "") + ("\"" + map[i].first + "\":\"" + map[i].second + "\"");
  return s + "}}";
}

void test_folders() {
  const char* kBad = codes::kCheckpointInvalid;
  const char* kNotFound = codes::kWeightsNotFound;

  // Single file.
  {
    const std::string dir = make_dir("single");
    write_file(dir + "/model.safetensors", shard_bytes({"w", "b"}, 1.0f));
    std::unique_ptr<Checkpoint> ck;
    expect_no_error("single-file folder opens", [&] { ck = Checkpoint::open_dir(dir); });
    if (ck) {
      check(ck->names() == std::vector<std::string>{"w", "b"}, "single: names");
      check(ck->find("b") && Checkpoint::read_f32(*ck->find("b")) == std::vector<float>{2.0f, -2.0f}, "single: values");
      check(ck->find("nope") == nullptr, "single: absent name");
      check(ck->source() == dir + "/model.safetensors", "single: source");
    }
    expect_no_error("trailing slash on the folder", [&] { Checkpoint::open_dir(dir + "/"); });
  }
  // No weights.
  expect_error("folder without weights", kNotFound, "looked for model.safetensors.index.json, model.safetensors",
               [&] { Checkpoint::open_dir(make_dir("empty_folder")); });
  expect_error("folder missing", kNotFound, "does not exist", [&] { Checkpoint::open_dir(path_in("no_such_folder")); });
  write_file(path_in("plain_file"), "x");
  expect_error("folder is a file", kNotFound, "not a directory", [&] { Checkpoint::open_dir(path_in("plain_file")); });
  {
    const std::string dir = make_dir("malformed_single");
    write_file(dir + "/model.safetensors", "abc");
    expect_error("malformed model.safetensors in folder", kBad, "model.safetensors: file is 3 bytes",
                 [&] { Checkpoint::open_dir(dir); });
  }

  // Sharded, good: two shards, the index names every tensor; a stray model.safetensors is ignored.
  {
    const std::string dir = make_dir("sharded");
    write_file(dir + "/model-00001-of-00002.safetensors", shard_bytes({"a", "b"}, 10.0f));
    write_file(dir + "/model-00002-of-00002.safetensors", shard_bytes({"c"}, 20.0f));
    write_file(dir + "/model.safetensors", "not used");
    write_file(dir + "/model.safetensors.index.json", index_json({{"a", "model-00001-of-00002.safetensors"},
                                                                  {"c", "model-00002-of-00002.safetensors"},
                                                                  {"b", "model-00001-of-00002.safetensors"}}));
    std::unique_ptr<Checkpoint> ck;
    expect_no_error("sharded folder opens", [&] { ck = Checkpoint::open_dir(dir); });
    if (ck) {
      check(ck->names() == std::vector<std::string>{"a", "b", "c"}, "sharded: names in shard order");
      check(ck->find("c") && Checkpoint::read_f32(*ck->find("c")) == std::vector<float>{20.0f, -20.0f},
            "sharded: values from shard 2");
      check(ck->find("b") && ck->find("b")->file == dir + "/model-00001-of-00002.safetensors", "sharded: file");
      check(ck->source() == dir + "/model.safetensors.index.json", "sharded: index preferred");
    }
  }
  // Sharded, broken in each way.
  auto sharded_case = [&](const std::string& label, const std::string& index, const char* code,
                          const std::string& needle, bool write_shards = true) {
    const std::string dir = make_dir("sharded_" + label);
    if (write_shards) {
      write_file(dir + "/s1.safetensors", shard_bytes({"a", "b"}, 1.0f));
      write_file(dir + "/s2.safetensors", shard_bytes({"c"}, 2.0f));
    }
    write_file(dir + "/model.safetensors.index.json", index);
    expect_error("sharded " + label, code, needle, [&] { Checkpoint::open_dir(dir); });
  };
  sharded_case("missing shard", index_json({{"a", "s1.safetensors"}, {"z", "s3.safetensors"}}), kNotFound,
               "model.safetensors.index.json names shard 's3.safetensors', which is not in");
  sharded_case("dotdot shard", index_json({{"a", "../s1.safetensors"}}), kBad,
               "shard '../s1.safetensors' named for tensor 'a' contains a path separator");
  sharded_case("absolute shard", index_json({{"a", "/etc/passwd"}}), kBad, "path separator");
  sharded_case("subdir shard", index_json({{"a", "sub/s1.safetensors"}}), kBad, "path separator");
  sharded_case("backslash shard", index_json({{"a", "..\\\\s1.safetensors"}}), kBad, "path separator");
  sharded_case("dotdot name", index_json({{"a", ".."}}), kBad, "is not a file name");
  sharded_case("dot name", index_json({{"a", "."}}), kBad, "is not a file name");
  sharded_case("empty shard name", index_json({{"a", ""}}), kBad, "is empty");
  sharded_case("NUL in shard name", index_json({{"a", "s1.safetensors\\u0000x"}}), kBad,
               "shard 's1.safetensors\\x00x' named for tensor 'a' contains a NUL byte");
  sharded_case("tensor absent from its shard", index_json({{"a", "s1.safetensors"}, {"q", "s2.safetensors"}}), kBad,
               "tensor 'q' is listed in shard 's2.safetensors', which does not hold it");
  sharded_case("tensor in the wrong shard", index_json({{"a", "s2.safetensors"}}), kBad,
               "tensor 'a' is listed in shard 's2.safetensors'");
  sharded_case("malformed index JSON", "{\"weight_map\": {\"a\": \"s1.safetensors\"", kBad,
               "model.safetensors.index.json: not valid JSON");
  sharded_case("empty index file", "", kBad, "not valid JSON");
  sharded_case("index is an array", "[1]", kBad, "top level is an array, expected an object");
  sharded_case("no weight_map", "{\"metadata\":{}}", kBad, "has no 'weight_map'");
  sharded_case("weight_map array", "{\"weight_map\":[]}", kBad, "weight_map is an array");
  sharded_case("weight_map empty", "{\"weight_map\":{}}", kBad, "weight_map is empty");
  sharded_case("weight_map value number", "{\"weight_map\":{\"a\":1}}", kBad,
               "weight_map['a'] is an integer, expected a shard file name");
  sharded_case("index deep nesting", "{\"weight_map\":" + std::string(200, '['), kBad, "nesting deeper");
  {
    const std::string dir = make_dir("sharded_dup");
    write_file(dir + "/s1.safetensors", shard_bytes({"a", "b"}, 1.0f));
    write_file(dir + "/s2.safetensors", shard_bytes({"b", "c"}, 2.0f));
    write_file(dir + "/model.safetensors.index.json", index_json({{"a", "s1.safetensors"}, {"c", "s2.safetensors"}}));
    expect_error("duplicate tensor across shards", kBad,
                 "tensor 'b' is stored in both s1.safetensors and s2.safetensors", [&] { Checkpoint::open_dir(dir); });
  }
  {
    const std::string dir = make_dir("sharded_bad_shard");
    write_file(dir + "/s1.safetensors", st_bytes("[]", ""));
    write_file(dir + "/model.safetensors.index.json", index_json({{"a", "s1.safetensors"}}));
    expect_error("malformed shard", kBad, "s1.safetensors: header is an array", [&] { Checkpoint::open_dir(dir); });
  }
  {
    const std::string dir = make_dir("sharded_index_dir");
    make_dir("sharded_index_dir/model.safetensors.index.json");
    expect_error("index is a directory", kBad, "is not a regular file", [&] { Checkpoint::open_dir(dir); });
  }
}

// ---- the real fixture -------------------------------------------------------------------------

void test_fixture(const char* path) {
  if (path == nullptr) {
    std::printf("note: no fixture path given (argv[1]); skipping the real model.safetensors check\n");
    return;
  }
  expect_no_error(std::string("fixture ") + path, [&] {
    std::unique_ptr<SafetensorsFile> f = SafetensorsFile::open(path);
    check(!f->tensors().empty(), "fixture has tensors");
    size_t floats = 0;
    bool finite = true;
    for (const TensorInfo& t : f->tensors()) {
      if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F64) continue;
      std::vector<float> v = Checkpoint::read_f32(t);
      floats += v.size();
      for (float x : v) finite = finite && std::isfinite(x);
    }
    check(floats > 0 && finite, "fixture float tensors read and are finite");
    // The folder it sits in loads the same tensors through open_dir.
    const std::string p(path);
    const size_t slash = p.find_last_of('/');
    if (p.substr(slash == std::string::npos ? 0 : slash + 1) == "model.safetensors") {
      std::unique_ptr<Checkpoint> ck = Checkpoint::open_dir(slash == std::string::npos ? "." : p.substr(0, slash));
      check(ck->size() == f->tensors().size(), "fixture folder opens with the same tensors");
    }
    std::printf("fixture: %zu tensors, %zu float values\n", f->tensors().size(), floats);
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "vitmsn-test-checkpoint-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::printf("cannot create a temp dir: %s\n", std::strerror(errno));
    return 2;
  }
  g_tmp = tmpl;

  try {
    test_json();
    test_valid_file();
    test_conversions();
    test_malformed_files();
    test_folders();
    test_fixture(argc > 1 ? argv[1] : nullptr);
  } catch (const std::exception& e) {
    check(false, std::string("unexpected exception escaped a test: ") + e.what());
  }

  std::error_code ec;
  std::filesystem::remove_all(g_tmp, ec);
  return finish();
}
