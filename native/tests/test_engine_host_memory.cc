// host_available_bytes on fake /proc and /sys trees: MemAvailable alone, cgroup v1 and v2 limits
// (the process's own folder and its ancestors, inactive file pages not counted as used, "max" and
// v1's huge "no limit" value), a namespaced mount, and the real machine.
#include "tests/harness.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/host_memory.h"

using namespace vitmsn;
namespace fs = std::filesystem;

namespace {

constexpr size_t MiB = size_t{1} << 20;

void put(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// A fake root with /proc/meminfo (MemAvailable in MiB) and the given cgroup/mountinfo text.
fs::path fake(const std::string& name, size_t mem_available_mib, const std::string& cgroup,
              const std::string& mountinfo) {
  const fs::path root = fs::temp_directory_path() / ("vitmsn-hostmem-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(root);
  put(root / "proc/meminfo", "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   " +
                                 std::to_string(mem_available_mib * 1024) + " kB\n");
  if (!cgroup.empty()) put(root / "proc/self/cgroup", cgroup);
  if (!mountinfo.empty()) put(root / "proc/self/mountinfo", mountinfo);
  return root;
}

const char* kV1Mounts =
    "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
    "31 25 0:27 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory\n";
const char* kV2Mounts = "28 25 0:25 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";

}  // namespace

int main() {
  {
    const fs::path r = fake("plain", 5000, "", "");
    check(host_available_bytes(r.string()) == 5000 * MiB, "MemAvailable alone");
    fs::remove_all(r);
  }
  {  // v1: the process's group has 2 GiB with 500 MiB used (100 of them inactive page cache)
    const fs::path r = fake("v1", 20000, "4:memory:/svc/job\n1:cpu:/\n", kV1Mounts);
    const fs::path g = r / "sys/fs/cgroup/memory/svc/job";
    put(g / "memory.limit_in_bytes", std::to_string(2048 * MiB) + "\n");
    put(g / "memory.usage_in_bytes", std::to_string(500 * MiB) + "\n");
    put(g / "memory.stat", "cache 1\ntotal_inactive_file " + std::to_string(100 * MiB) + "\n");
    put(r / "sys/fs/cgroup/memory/svc/memory.limit_in_bytes", "9223372036854771712\n");
    put(r / "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    check(host_available_bytes(r.string()) == (2048 - 400) * MiB, "v1 limit − (usage − inactive file)");
    // A tighter ancestor wins.
    put(r / "sys/fs/cgroup/memory/svc/memory.limit_in_bytes", std::to_string(1024 * MiB) + "\n");
    put(r / "sys/fs/cgroup/memory/svc/memory.usage_in_bytes", std::to_string(900 * MiB) + "\n");
    check(host_available_bytes(r.string()) == 124 * MiB, "v1 ancestor's limit applies");
    // Over the limit: nothing left, not a wrap-around.
    put(g / "memory.usage_in_bytes", std::to_string(4096 * MiB) + "\n");
    put(g / "memory.stat", "total_inactive_file 0\n");
    check(host_available_bytes(r.string()) == 0, "usage above the limit leaves 0");
    fs::remove_all(r);
  }
  {  // v2 with "max" in the leaf and a limit above it
    const fs::path r = fake("v2", 20000, "0::/user.slice/app.scope\n", kV2Mounts);
    put(r / "sys/fs/cgroup/user.slice/app.scope/memory.max", "max\n");
    put(r / "sys/fs/cgroup/user.slice/app.scope/memory.current", "1\n");
    put(r / "sys/fs/cgroup/user.slice/memory.max", std::to_string(6144 * MiB) + "\n");
    put(r / "sys/fs/cgroup/user.slice/memory.current", std::to_string(1024 * MiB) + "\n");
    put(r / "sys/fs/cgroup/user.slice/memory.stat", "anon 5\ninactive_file " + std::to_string(24 * MiB) + "\n");
    check(host_available_bytes(r.string()) == (6144 - 1000) * MiB, "v2 parent limit, inactive_file not counted");
    fs::remove_all(r);
  }
  {  // v2 in a container: the mount's root is the process's own group ("0::/" inside a namespace
     // reads as the group path on the host side of mountinfo)
    const fs::path r =
        fake("v2ns", 20000, "0::/docker/abc\n", "28 25 0:25 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put(r / "sys/fs/cgroup/memory.max", std::to_string(3000 * MiB) + "\n");
    put(r / "sys/fs/cgroup/memory.current", std::to_string(1000 * MiB) + "\n");
    check(host_available_bytes(r.string()) == 2000 * MiB, "namespaced v2 mount: its root is the group");
    fs::remove_all(r);
  }
  {  // MemAvailable smaller than the cgroup's headroom wins
    const fs::path r = fake("small", 300, "0::/a\n", kV2Mounts);
    put(r / "sys/fs/cgroup/a/memory.max", std::to_string(6144 * MiB) + "\n");
    put(r / "sys/fs/cgroup/a/memory.current", "0\n");
    check(host_available_bytes(r.string()) == 300 * MiB, "the machine's MemAvailable bounds a loose cgroup");
    fs::remove_all(r);
  }
  const size_t real = host_available_bytes();
  check(real > 64 * MiB, "this machine reports some memory available (" + std::to_string(real / MiB) + " MiB)");
  return finish();
}
