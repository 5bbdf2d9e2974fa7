#include "cpu/cpu_topology.h"

#include <sched.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>

namespace vitmsn {

int physical_core_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const bool have_affinity = sched_getaffinity(0, sizeof(set), &set) == 0;
  const int logical = have_affinity ? CPU_COUNT(&set) : static_cast<int>(std::thread::hardware_concurrency());
  // Count distinct (package, core) pairs among the CPUs we may use; fall back to the logical count.
  std::set<std::pair<int, int>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE && have_affinity; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream core(base + "core_id"), pkg(base + "physical_package_id");
    int core_id = -1, pkg_id = -1;
    if (!(core >> core_id) || !(pkg >> pkg_id)) return logical > 0 ? logical : 1;
    cores.emplace(pkg_id, core_id);
  }
  if (cores.empty()) return logical > 0 ? logical : 1;
  return static_cast<int>(cores.size());
}

}  // namespace vitmsn
