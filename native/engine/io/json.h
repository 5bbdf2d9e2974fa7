// A small strict JSON (RFC 8259) reader for the files a model folder holds: safetensors headers and
// shard indexes. Strict on purpose: these files come from disk and may be hostile, so anything not
// plainly valid is rejected rather than guessed at.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vitmsn {

// Thrown by parse_json. Callers turn it into an Error with the code that fits the file being read.
class JsonError : public std::invalid_argument {
 public:
  JsonError(size_t offset, const std::string& reason)
      : std::invalid_argument("invalid JSON at byte " + std::to_string(offset) + ": " + reason),
        offset_(offset),
        reason_(reason) {}
  size_t offset() const { return offset_; }              // byte offset into the parsed text
  const std::string& reason() const { return reason_; }  // what is wrong, without the offset

 private:
  size_t offset_;
  std::string reason_;
};

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;  // null
  static JsonValue make_bool(bool b);
  static JsonValue make_number(double d);
  static JsonValue make_integer(int64_t i);
  static JsonValue make_string(std::string s);
  static JsonValue make_array();
  static JsonValue make_object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Numbers keep their exact value when written as an integer literal (no fraction, no exponent)
  // that fits int64: safetensors offsets can exceed 2^53, where a double would round them.
  bool is_integer() const { return type_ == Type::kNumber && is_int_; }

  // Accessors; each must only be called on a value of the matching type (checked: they throw
  // std::logic_error otherwise, never read garbage).
  bool as_bool() const;
  double as_double() const;
  int64_t as_int64() const;  // requires is_integer()
  const std::string& as_string() const;
  const std::vector<JsonValue>& items() const;          // array elements
  size_t size() const;                                  // array or object element count
  const std::vector<std::string>& keys() const;         // object keys, in document order
  const std::vector<JsonValue>& values() const;         // object values, parallel to keys()
  const JsonValue* find(const std::string& key) const;  // object lookup; nullptr when absent

  // Builders used by the parser. add_member returns false when the key is already present.
  void push_back(JsonValue v);
  bool add_member(std::string key, JsonValue v);

 private:
  void expect(Type t, const char* what) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  bool is_int_ = false;
  double num_ = 0;
  int64_t int_ = 0;
  std::string str_;
  // Arrays use values_; objects use keys_ + values_ (parallel) and index_ for lookup.
  std::vector<std::string> keys_;
  std::vector<JsonValue> values_;
  std::map<std::string, size_t> index_;
};

// Nesting deeper than this is rejected so hostile input cannot exhaust the stack.
inline constexpr int kJsonMaxDepth = 64;

// Parses exactly one JSON value surrounded by optional whitespace. Rejects: trailing garbage,
// invalid UTF-8, unescaped control characters, lone surrogates, duplicate object keys, numbers
// outside the double range, and nesting deeper than max_depth. Throws JsonError.
JsonValue parse_json(std::string_view text, int max_depth = kJsonMaxDepth);

// `s` with control characters and DEL written as \xNN, for quoting strings that come from a file in
// error messages (a NUL would otherwise cut what() short, a newline would break log lines).
std::string printable(std::string_view s);

// A short description of a value's type ("an object", "a string", …) for error messages.
const char* json_type_name(const JsonValue& v);

}  // namespace vitmsn
