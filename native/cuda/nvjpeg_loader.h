// Finds and opens libnvjpeg at run time, as the cuBLASLt loader does (cuda/library_search.h): GPU
// JPEG decoding is opt-in and never a dependency. Search order (docs/cuda.md): VITMSN_NVJPEG_PATH
// (a file or a folder), then libnvjpeg.so.13 / .so.12 on the default loader path and the CUDA and
// Python-wheel folders.
#pragma once
#include "cuda/library_search.h"
#include "cuda/nvjpeg_api.h"

namespace vitmsn {

using NvjpegLibrary = LoadedLibrary<nvjpeg::Api>;

// Loads once per process (thread-safe); later calls return the same result.
const NvjpegLibrary& nvjpeg_library();

}  // namespace vitmsn
