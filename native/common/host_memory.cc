#include "common/host_memory.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace vitmsn {
namespace {

constexpr size_t kUnknown = std::numeric_limits<size_t>::max();

bool read_text(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  out = s.str();
  return true;
}

// A file holding one number (or "max", v2's "no limit"); kUnknown when absent or unlimited.
size_t read_number(const std::string& path) {
  std::string text;
  if (!read_text(path, text)) return kUnknown;
  if (text.rfind("max", 0) == 0) return kUnknown;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str()) return kUnknown;
  return static_cast<size_t>(v);
}

// `key value` lines (memory.stat) or `Key: value kB` lines (meminfo): the value of `key`, or 0.
size_t field(const std::string& text, const std::string& key, size_t scale) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0 || line.size() <= key.size()) continue;
    const char next = line[key.size()];
    if (next != ' ' && next != ':' && next != '\t') continue;
    const char* p = line.c_str() + key.size() + 1;
    while (*p == ' ' || *p == '\t') ++p;
    return static_cast<size_t>(std::strtoull(p, nullptr, 10)) * scale;
  }
  return 0;
}

struct Mount {
  std::string root, point;  // the hierarchy folder mounted, and where
  bool v2 = false;
};

// cgroup mounts from /proc/self/mountinfo: fields 4 (root) and 5 (mount point), then after " - "
// the type (cgroup / cgroup2) and the super options (which name the v1 controllers).
std::vector<Mount> memory_mounts(const std::string& root) {
  std::vector<Mount> out;
  std::string text;
  if (!read_text(root + "/proc/self/mountinfo", text)) return out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, dev, mroot, point, type, source, options;
    head >> id >> parent >> dev >> mroot >> point;
    tail >> type >> source >> options;
    Mount m{mroot, point, type == "cgroup2"};
    if (m.v2 || (type == "cgroup" && ("," + options + ",").find(",memory,") != std::string::npos)) out.push_back(m);
  }
  return out;
}

// limit − (usage − inactive file) for one cgroup folder; kUnknown when it has no limit.
size_t headroom(const std::string& dir, bool v2) {
  const size_t limit = read_number(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"));
  if (limit == kUnknown || limit >= (size_t{1} << 62)) return kUnknown;  // v1 writes ~2^63 for "none"
  size_t usage = read_number(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
  if (usage == kUnknown) return kUnknown;
  std::string stat;
  if (read_text(dir + "/memory.stat", stat)) {
    const size_t inactive = v2 ? field(stat, "inactive_file", 1) : field(stat, "total_inactive_file", 1);
    usage -= std::min(usage, inactive);
  }
  return limit > usage ? limit - usage : 0;
}

}  // namespace

size_t host_available_bytes(const std::string& root) {
  size_t best = kUnknown;
  std::string meminfo;
  if (read_text(root + "/proc/meminfo", meminfo)) {
    const size_t avail = field(meminfo, "MemAvailable", 1024);
    if (avail > 0) best = avail;
  }
  // /proc/self/cgroup: "ID:controllers:path" (v1) and "0::path" (v2).
  std::string groups;
  if (!read_text(root + "/proc/self/cgroup", groups)) return best;
  const std::vector<Mount> mounts = memory_mounts(root);
  std::istringstream in(groups);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    const bool v2 = line.compare(0, a, "0") == 0 && controllers.empty();
    if (!v2 && ("," + controllers + ",").find(",memory,") == std::string::npos) continue;
    for (const Mount& m : mounts) {
      if (m.v2 != v2) continue;
      // The process's folder as seen through this mount (a namespaced mount's root is the path itself).
      std::string rel;
      if (path.compare(0, m.root.size(), m.root) == 0)
        rel = path.substr(m.root == "/" ? 0 : m.root.size());
      else
        continue;
      std::string dir = root + m.point + (rel == "/" ? "" : rel);
      const std::string top = root + m.point;
      for (;;) {  // every ancestor's limit applies too
        best = std::min(best, headroom(dir, v2));
        if (dir.size() <= top.size()) break;
        dir = dir.substr(0, dir.find_last_of('/'));
        if (dir.size() < top.size()) break;
      }
      break;
    }
  }
  return best;
}

void return_free_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace vitmsn
