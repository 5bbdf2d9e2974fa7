#include "backend/registry.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace {

// Each backend's info names the dtypes it runs: lib/ checks a load's dtype against them and words the refusal.
BackendInfo cuda_info() {
#ifdef VITMSN_WITH_CUDA
  return cuda_backend_info();
#else
  return {"cuda",
          false,
          false,
          "this build of the addon was compiled without CUDA (binding.gyp build, or nvcc missing)",
          {"float32", "float16", "bfloat16"}};
#endif
}

#ifdef VITMSN_WITH_CUDA
// The host's part of the CUDA backends' staged copies (a whole batch's input and output through
// pinned slots): a pool of its own, since the kernels' and the image pool run long jobs that would
// hold these up, and up to 8 threads, about where one socket's copy bandwidth levels off. Made with
// the first CUDA backend, kept for the process (its threads sleep when idle).
HostCopy parallel_host_copy() {
  static cpu::ThreadPool* pool =
      new cpu::ThreadPool(std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 8));
  return [](void* dst, const void* src, size_t bytes) {
    constexpr size_t kBlock = size_t{256} << 10;
    auto* d = static_cast<uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    const auto blocks = static_cast<int64_t>((bytes + kBlock - 1) / kBlock);
    pool->parallel_for(
        blocks,
        [&](int64_t b, int64_t e) {
          const size_t lo = static_cast<size_t>(b) * kBlock, hi = std::min(bytes, static_cast<size_t>(e) * kBlock);
          std::memcpy(d + lo, s + lo, hi - lo);
        },
        static_cast<int64_t>(bytes / 4));
  };
}
#endif

}  // namespace

std::vector<BackendInfo> list_backends() { return {cpu_backend_info(), cuda_info()}; }

std::shared_ptr<Backend> acquire_backend(const std::string& device, int threads, const std::string& dtype) {
  if (device == "cpu") {
    internal_check(dtype == "float32" || dtype == "bfloat16" || dtype == "int8",
                   "CPU dtype (lib/ checks BackendInfo::dtypes)");
    if (threads <= 0) threads = default_cpu_threads();
    static std::mutex mu;
    static std::map<int, std::weak_ptr<Backend>> shared;
    std::lock_guard<std::mutex> lock(mu);
    std::shared_ptr<Backend> be = shared[threads].lock();
    if (!be) {
      be = std::shared_ptr<Backend>(make_cpu_backend(threads));
      shared[threads] = be;
    }
    return be;
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
#ifdef VITMSN_WITH_CUDA
    int index = 0;
    if (device.size() > 5) {
      const std::string digits = device.substr(5);
      if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string::npos) {
        throw Error(codes::kInvalidArgument, "unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
      }
      index = std::stoi(digits);
    }
    // One backend (stream, cuBLASLt handle, workspace) per GPU and dtype, shared by its models.
    static std::mutex mu;
    static std::map<std::pair<int, std::string>, std::weak_ptr<Backend>> shared;
    std::lock_guard<std::mutex> lock(mu);
    std::shared_ptr<Backend> be = shared[{index, dtype}].lock();
    if (!be) {
      be = std::shared_ptr<Backend>(make_cuda_backend(index, dtype, parallel_host_copy()));
      shared[{index, dtype}] = be;
    }
    return be;
#else
    throw Error(codes::kDeviceUnavailable, "device '" + device + "' is not usable: " + cuda_info().detail);
#endif
  }
  throw Error(codes::kInvalidArgument, "unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
}

}  // namespace vitmsn
