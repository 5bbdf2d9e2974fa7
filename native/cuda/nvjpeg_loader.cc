#include "cuda/nvjpeg_loader.h"

#include <mutex>

#include "common/knobs.h"
#include "cuda/library_search.h"

namespace vitmsn {

const NvjpegLibrary& nvjpeg_library() {
  static NvjpegLibrary result;
  static std::once_flag once;
  std::call_once(once, [] {
    static nvjpeg::Api api;
    const LibrarySearch search{{"libnvjpeg.so.13", "libnvjpeg.so.12"},
                               knobs::text(knobs::Knob::kNvjpegPath),
                               {"nvidia/cu13/lib", "nvidia/nvjpeg/lib"}};
    const auto bind = [](void* lib, std::string* missing) {
      return bind_symbol(lib, "nvjpegCreateSimple", &api.CreateSimple, missing) &&
             bind_symbol(lib, "nvjpegDestroy", &api.Destroy, missing) &&
             bind_symbol(lib, "nvjpegJpegStateCreate", &api.JpegStateCreate, missing) &&
             bind_symbol(lib, "nvjpegJpegStateDestroy", &api.JpegStateDestroy, missing) &&
             bind_symbol(lib, "nvjpegGetImageInfo", &api.GetImageInfo, missing) &&
             bind_symbol(lib, "nvjpegDecode", &api.Decode, missing);
    };
    if (open_library(search, bind, &result.path, &result.reason)) result.api = &api;
  });
  return result;
}

}  // namespace vitmsn
