// Finding and opening a CUDA library at run time (cuBLASLt, nvJPEG): never a link-time dependency,
// so the addon loads on machines without them. Search order (docs/cuda.md): the override (a file or
// a folder), the default loader path (LD_LIBRARY_PATH, ldconfig), $CUDA_PATH/lib64,
// /usr/local/cuda/lib64, /usr/local/cuda/targets/*/lib, and Python wheels' folders under the
// site-packages folders of PYTHONPATH. Never the toolkit's stubs/.
#pragma once
#include <dlfcn.h>

#include <functional>
#include <string>
#include <vector>

namespace vitmsn {

struct LibrarySearch {
  std::vector<std::string> sonames;     // e.g. libcublasLt.so.13, libcublasLt.so.12
  std::string override_path;            // a file or a folder (a knob's value); empty: none
  std::vector<std::string> wheel_dirs;  // under each PYTHONPATH entry, e.g. nvidia/cu13/lib
};

// A library opened by open_library, with the table of its functions.
template <class Api>
struct LoadedLibrary {
  const Api* api = nullptr;  // null when no usable library was found
  std::string path;          // the file that loaded
  std::string reason;        // why none loaded (every place tried, and what failed)
};

// The candidate file paths in search order.
std::vector<std::string> library_candidates(const LibrarySearch& s);

// dlopens the candidates in order until bind(handle, &missing_symbol) accepts one; that handle stays
// open for the life of the process. Returns it (null when none did) and sets path, or reason: every
// place tried and what failed.
void* open_library(const LibrarySearch& s, const std::function<bool(void*, std::string*)>& bind, std::string* path,
                   std::string* reason);

// *fn = the library's `name`; false (and missing = name) when it lacks it.
template <typename Fn>
bool bind_symbol(void* lib, const char* name, Fn* fn, std::string* missing) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!*fn) *missing = name;
  return *fn != nullptr;
}

}  // namespace vitmsn
