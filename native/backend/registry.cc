#include "backend/registry.h"

#include <map>
#include <mutex>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/cpu_topology.h"
#include "common/error.h"
#ifdef VITMSN_WITH_CUDA
#include "cuda/cublaslt_loader.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_probe.h"
#endif

namespace vitmsn {
namespace {

BackendInfo cuda_info() {
  BackendInfo info;
  info.name = "cuda";
  info.dtypes = {"float32", "float16", "bfloat16"};
#ifdef VITMSN_WITH_CUDA
  info.compiled = true;
  const std::string why = cuda_unavailable_reason(0);
  info.available = why.empty();
  info.detail = why.empty() ? std::to_string(probe_cuda().device_count) + " GPU(s); cuBLASLt " + cublaslt().path : why;
#else
  info.detail = "this build of the addon was compiled without CUDA (binding.gyp build, or nvcc missing)";
#endif
  return info;
}

}  // namespace

int default_cpu_threads() { return physical_core_count(); }

std::vector<BackendInfo> list_backends() {
  BackendInfo cpu{"cpu", true, true, std::to_string(physical_core_count()) + " physical core(s)", {"float32", "bfloat16"}};
  try {
    cpu.detail += ", " + cpu::isa_summary(cpu::default_isa());
  } catch (const Error& e) {  // VITMSN_CPU_ISA names a path this CPU lacks
    cpu.available = false;
    cpu.detail += ", " + std::string(e.what());
  }
  return {cpu, cuda_info()};
}

std::shared_ptr<Backend> acquire_backend(const std::string& device, int threads, const std::string& dtype) {
  if (device == "cpu") {
    internal_check(dtype == "float32" || dtype == "bfloat16", "CPU dtype (lib/ checks BackendInfo::dtypes)");
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
      be = std::shared_ptr<Backend>(make_cuda_backend(index, dtype));
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
