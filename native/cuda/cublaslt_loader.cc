#include "common/knobs.h"
#include "cuda/cublaslt_loader.h"

#include <mutex>

#include "cuda/library_search.h"

namespace vitmsn {
namespace {

LibrarySearch search() {
  return {{"libcublasLt.so.13", "libcublasLt.so.12"},
          knobs::text(knobs::Knob::kCublasLtPath),
          {"nvidia/cu13/lib", "nvidia/cublas/lib"}};
}

bool bind(void* lib, lt::Api* api, std::string* missing) {
  return bind_symbol(lib, "cublasLtGetVersion", &api->GetVersion, missing) &&
         bind_symbol(lib, "cublasLtCreate", &api->Create, missing) &&
         bind_symbol(lib, "cublasLtDestroy", &api->Destroy, missing) &&
         bind_symbol(lib, "cublasLtMatmulDescCreate", &api->MatmulDescCreate, missing) &&
         bind_symbol(lib, "cublasLtMatmulDescDestroy", &api->MatmulDescDestroy, missing) &&
         bind_symbol(lib, "cublasLtMatmulDescSetAttribute", &api->MatmulDescSetAttribute, missing) &&
         bind_symbol(lib, "cublasLtMatrixLayoutCreate", &api->MatrixLayoutCreate, missing) &&
         bind_symbol(lib, "cublasLtMatrixLayoutDestroy", &api->MatrixLayoutDestroy, missing) &&
         bind_symbol(lib, "cublasLtMatmulPreferenceCreate", &api->MatmulPreferenceCreate, missing) &&
         bind_symbol(lib, "cublasLtMatmulPreferenceDestroy", &api->MatmulPreferenceDestroy, missing) &&
         bind_symbol(lib, "cublasLtMatmulPreferenceSetAttribute", &api->MatmulPreferenceSetAttribute, missing) &&
         bind_symbol(lib, "cublasLtMatmulAlgoGetHeuristic", &api->MatmulAlgoGetHeuristic, missing) &&
         bind_symbol(lib, "cublasLtMatmul", &api->Matmul, missing);
}

}  // namespace

std::vector<std::string> cublaslt_candidates() { return library_candidates(search()); }

const CublasLtLibrary& cublaslt() {
  static CublasLtLibrary result;
  static std::once_flag once;
  std::call_once(once, [] {
    static lt::Api api;
    const auto bind_api = [](void* lib, std::string* missing) { return bind(lib, &api, missing); };
    if (open_library(search(), bind_api, &result.path, &result.reason)) result.api = &api;
  });
  return result;
}

}  // namespace vitmsn
