#include "engine/model/weight_names.h"

#include <cctype>
#include <utility>

namespace vitmsn {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// "layers.12.rest" → {"12", "rest"} when the text after the prefix is "<digits>.<rest>".
bool split_layer(const std::string& s, const std::string& prefix, std::string* index, std::string* rest) {
  if (!starts_with(s, prefix)) return false;
  size_t i = prefix.size(), j = i;
  while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
  if (j == i || j >= s.size() || s[j] != '.') return false;
  *index = s.substr(i, j - i);
  *rest = s.substr(j + 1);
  return true;
}

}  // namespace

std::string canonical_weight_name(const std::string& stored) {
  std::string name = stored;
  if (starts_with(name, "vit.")) name = name.substr(4);

  std::string index, rest;
  if (split_layer(name, "encoder.layer.", &index, &rest) || split_layer(name, "encoder.layers.", &index, &rest) ||
      split_layer(name, "layers.", &index, &rest)) {
    static const std::pair<const char*, const char*> kRenames[] = {
        {"attention.q_proj.", "attention.attention.query."},
        {"attention.k_proj.", "attention.attention.key."},
        {"attention.v_proj.", "attention.attention.value."},
        {"attention.o_proj.", "attention.output.dense."},
        {"mlp.fc1.", "intermediate.dense."},
        {"mlp.fc2.", "output.dense."},
    };
    for (const auto& [from, to] : kRenames) {
      if (starts_with(rest, from)) {
        rest = to + rest.substr(std::string(from).size());
        break;
      }
    }
    return "encoder.layer." + index + "." + rest;
  }
  return name;
}

}  // namespace vitmsn
