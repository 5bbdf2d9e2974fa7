#include "common/knobs.h"
#include "cuda/cublaslt_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>
#include <sstream>

namespace vitmsn {
namespace {

const char* const kSonames[] = {"libcublasLt.so.13", "libcublasLt.so.12"};

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void add_folder(std::vector<std::string>& out, const std::string& dir) {
  if (dir.empty() || dir.find("/stubs") != std::string::npos) return;  // stubs only link, never run
  for (const char* so : kSonames) out.push_back(dir + "/" + so);
}

template <typename Fn>
bool sym(void* lib, const char* name, Fn* fn, std::string* missing) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!*fn) *missing = name;
  return *fn != nullptr;
}

bool bind(void* lib, lt::Api* api, std::string* missing) {
  return sym(lib, "cublasLtGetVersion", &api->GetVersion, missing) &&
         sym(lib, "cublasLtCreate", &api->Create, missing) && sym(lib, "cublasLtDestroy", &api->Destroy, missing) &&
         sym(lib, "cublasLtMatmulDescCreate", &api->MatmulDescCreate, missing) &&
         sym(lib, "cublasLtMatmulDescDestroy", &api->MatmulDescDestroy, missing) &&
         sym(lib, "cublasLtMatmulDescSetAttribute", &api->MatmulDescSetAttribute, missing) &&
         sym(lib, "cublasLtMatrixLayoutCreate", &api->MatrixLayoutCreate, missing) &&
         sym(lib, "cublasLtMatrixLayoutDestroy", &api->MatrixLayoutDestroy, missing) &&
         sym(lib, "cublasLtMatmulPreferenceCreate", &api->MatmulPreferenceCreate, missing) &&
         sym(lib, "cublasLtMatmulPreferenceDestroy", &api->MatmulPreferenceDestroy, missing) &&
         sym(lib, "cublasLtMatmulPreferenceSetAttribute", &api->MatmulPreferenceSetAttribute, missing) &&
         sym(lib, "cublasLtMatmulAlgoGetHeuristic", &api->MatmulAlgoGetHeuristic, missing) &&
         sym(lib, "cublasLtMatmul", &api->Matmul, missing);
}

}  // namespace

std::vector<std::string> cublaslt_candidates() {
  std::vector<std::string> out;
  if (const std::string p = knobs::text(knobs::Knob::kCublasLtPath); !p.empty()) {
    if (is_dir(p.c_str()))
      add_folder(out, p);
    else
      out.emplace_back(p);
  }
  for (const char* so : kSonames) out.emplace_back(so);  // LD_LIBRARY_PATH, ldconfig cache
  if (const char* c = std::getenv("CUDA_PATH"); c && *c) add_folder(out, std::string(c) + "/lib64");
  add_folder(out, "/usr/local/cuda/lib64");
  if (DIR* d = opendir("/usr/local/cuda/targets")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') add_folder(out, std::string("/usr/local/cuda/targets/") + e->d_name + "/lib");
    }
    closedir(d);
  }
  if (const char* pp = std::getenv("PYTHONPATH"); pp && *pp) {
    std::stringstream ss(pp);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
      add_folder(out, dir + "/nvidia/cu13/lib");
      add_folder(out, dir + "/nvidia/cublas/lib");
    }
  }
  return out;
}

const CublasLtLibrary& cublaslt() {
  static CublasLtLibrary result;
  static std::once_flag once;
  std::call_once(once, [] {
    static lt::Api api;
    std::ostringstream tried;
    for (const std::string& path : cublaslt_candidates()) {
      void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!lib) {
        const char* e = dlerror();
        tried << "\n  " << path << ": " << (e ? e : "not loadable");
        continue;
      }
      std::string missing;
      if (!bind(lib, &api, &missing)) {
        tried << "\n  " << path << ": lacks " << missing;
        dlclose(lib);
        continue;
      }
      result.api = &api;
      result.path = path;
      return;  // the library stays loaded for the life of the process
    }
    result.reason = "libcublasLt.so.13/.so.12 not found; tried:" + tried.str();
  });
  return result;
}

}  // namespace vitmsn
