// What each backend folder gives the registry: a factory and a report of whether it can run here.
// Each is implemented in its own folder (cpu/cpu_backend.cc, cuda/cuda_backend.cc); the registry
// (registry.cc) is their one caller outside tests, and knows no backend's own headers. The CUDA
// entry points exist only in builds that compile native/cuda (VITMSN_WITH_CUDA on the registry).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "common/staged_copy.h"

namespace vitmsn {

struct BackendInfo {
  std::string name;  // "cpu", "cuda"
  bool compiled = false;
  bool available = false;
  std::string detail;               // why it is or is not usable, in words for the user
  std::vector<std::string> dtypes;  // the dtypes it runs: lib/ checks a load's dtype against these
};

// The CPU backend: "device" memory is 64-byte-aligned host memory, and every op runs its kernel on
// a persistent pool of `threads` threads (≤ 0: std::thread::hardware_concurrency()). Ops from
// several threads are safe: the pool runs one op's parallel work at a time.
std::unique_ptr<Backend> make_cpu_backend(int threads);
BackendInfo cpu_backend_info();  // core count and the kernel path in use (or why it is refused)
int default_cpu_threads();       // the physical core count

// The CUDA backend on GPU `device`, storing activations and weights in `dtype` ("float32",
// "float16", "bfloat16"). Throws ERR_DEVICE_UNAVAILABLE when the device or cuBLASLt cannot be used
// (with the reason), ERR_UNSUPPORTED_DTYPE for another dtype. Big host copies of its transfers
// (through pinned slots) run on `host_copy`, which may use several threads.
std::unique_ptr<Backend> make_cuda_backend(int device, const std::string& dtype, HostCopy host_copy);
BackendInfo cuda_backend_info();  // GPU count and cuBLASLt path, or why CUDA cannot be used

}  // namespace vitmsn
