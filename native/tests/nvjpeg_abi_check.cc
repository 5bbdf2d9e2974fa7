// Compiles only where nvJPEG's header exists (the GPU machine: scripts/gpu-check.sh runs
// `g++ -fsyntax-only` on it). It proves that the values and layouts declared in
// native/cuda/nvjpeg_api.h, taken from copies of nvjpeg.h 11.6 and 12.3, match the installed header.
#include <nvjpeg.h>

#include <cstddef>
#include <type_traits>

#include "cuda/nvjpeg_api.h"

namespace nj = vitmsn::nvjpeg;

static_assert(NVJPEG_STATUS_SUCCESS == nj::kSuccess);
static_assert(NVJPEG_STATUS_INCOMPLETE_BITSTREAM == 10);  // the last name nj::status_name knows
static_assert(NVJPEG_MAX_COMPONENT == nj::kMaxComponent);
static_assert(NVJPEG_OUTPUT_RGBI == nj::kOutputRgbi);
static_assert(NVJPEG_CSS_GRAY == nj::kCssGray && NVJPEG_CSS_UNKNOWN == nj::kCssUnknown);
static_assert(sizeof(nvjpegOutputFormat_t) == sizeof(int) && sizeof(nvjpegChromaSubsampling_t) == sizeof(int));
static_assert(sizeof(nvjpegStatus_t) == sizeof(nj::Status));
static_assert(sizeof(nvjpegImage_t) == sizeof(nj::Image));
static_assert(offsetof(nvjpegImage_t, channel) == offsetof(nj::Image, channel));
static_assert(offsetof(nvjpegImage_t, pitch) == offsetof(nj::Image, pitch));
static_assert(std::is_same_v<decltype(nvjpegImage_t{}.pitch[0]), decltype(nj::Image{}.pitch[0])>);
static_assert(sizeof(nvjpegHandle_t) == sizeof(nj::Handle) && sizeof(nvjpegJpegState_t) == sizeof(nj::JpegState));
// The entry points' parameter lists, with the opaque types and enums mapped to ours.
static_assert(
    std::is_same_v<decltype(&nvjpegGetImageInfo), nvjpegStatus_t (*)(nvjpegHandle_t, const unsigned char*, size_t, int*,
                                                                     nvjpegChromaSubsampling_t*, int*, int*)>);
static_assert(std::is_same_v<decltype(&nvjpegDecode),
                             nvjpegStatus_t (*)(nvjpegHandle_t, nvjpegJpegState_t, const unsigned char*, size_t,
                                                nvjpegOutputFormat_t, nvjpegImage_t*, cudaStream_t)>);
static_assert(std::is_same_v<decltype(&nvjpegCreateSimple), nvjpegStatus_t (*)(nvjpegHandle_t*)>);
static_assert(std::is_same_v<decltype(&nvjpegJpegStateCreate), nvjpegStatus_t (*)(nvjpegHandle_t, nvjpegJpegState_t*)>);

int main() { return 0; }
