// How much more memory this process can have, so that a request too big for the machine fails with
// ERR_OUT_OF_MEMORY instead of being killed by the kernel. The answer is the least of:
//   - MemAvailable in /proc/meminfo (the whole machine), and
//   - for each cgroup the process is in (v1 "memory" or v2 unified), from its own folder up to the
//     hierarchy's root: limit − (usage − inactive file pages), since a container's limit applies
//     whatever the machine has free and reclaimable page cache does not count against it.
// Where none of this can be read (not Linux), the answer is "unknown" (SIZE_MAX).
#pragma once
#include <cstddef>
#include <string>

namespace vitmsn {

// `root` prefixes every path read ("" for the real system; tests point it at a fake tree).
size_t host_available_bytes(const std::string& root = "");

// Hands the heap's free pages back to the system (glibc's malloc_trim; nothing elsewhere). glibc
// keeps freed memory for reuse, so after a load has streamed hundreds of MB of float32 tensors
// through the heap, the process would otherwise stay that much bigger than what it holds.
void return_free_heap();

}  // namespace vitmsn
