#include "backend/registry.h"

#include <map>
#include <mutex>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/cpu_topology.h"
#include "engine/error.h"
#ifdef VITMSN_WITH_CUDA
#include "cuda/cuda_probe.h"
#endif

namespace vitmsn {
namespace {

BackendInfo cuda_info() {
  BackendInfo info;
  info.name = "cuda";
#ifdef VITMSN_WITH_CUDA
  info.compiled = true;
  CudaProbe probe = probe_cuda();
  // The kernels arrive with the CUDA backend issue; until then a GPU is reported but not used.
  info.available = false;
  info.detail = probe.device_count > 0
                    ? std::to_string(probe.device_count) + " GPU(s) found, but this build has no CUDA kernels yet"
                    : probe.reason;
#else
  info.detail = "this build of the addon was compiled without CUDA (binding.gyp build, or nvcc missing)";
#endif
  return info;
}

}  // namespace

int default_cpu_threads() { return physical_core_count(); }

std::vector<BackendInfo> list_backends() {
  BackendInfo cpu{"cpu", true, true, std::to_string(physical_core_count()) + " physical core(s)"};
  try {
    cpu.detail += ", " + cpu::isa_summary(cpu::default_isa());
  } catch (const Error& e) {  // VITMSN_CPU_ISA names a path this CPU lacks
    cpu.available = false;
    cpu.detail += ", " + std::string(e.what());
  }
  return {cpu, cuda_info()};
}

std::shared_ptr<Backend> acquire_backend(const std::string& device, int threads) {
  if (device == "cpu") {
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
    throw Error(codes::kDeviceUnavailable, "device '" + device + "' is not usable: " + cuda_info().detail);
  }
  throw Error(codes::kInvalidArgument, "unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
}

}  // namespace vitmsn
