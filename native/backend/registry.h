// Which backends this build has, whether each can run here and why not, and the one place that
// turns a device string into a Backend. Only this file knows which backends were compiled in.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/factories.h"

namespace vitmsn {

std::vector<BackendInfo> list_backends();

// device: "cpu" | "cuda" | "cuda:N". threads ≤ 0 picks the physical core count. CPU backends are
// shared per thread count so that several models do not oversubscribe the cores.
// Throws ERR_DEVICE_UNAVAILABLE with the reason when the device cannot be used.
// dtype: "float32" | "float16" | "bfloat16" | "int8" (what the device supports, BackendInfo::dtypes).
std::shared_ptr<Backend> acquire_backend(const std::string& device, int threads, const std::string& dtype = "float32");

}  // namespace vitmsn
