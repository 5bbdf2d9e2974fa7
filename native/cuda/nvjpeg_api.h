// The part of nvJPEG's C API that vitmsn calls, declared here because the library is opened at run
// time (cuda/nvjpeg_loader.h) and its header is not needed to build. Values as nvjpeg.h of nvJPEG 11.6
// and 12.3 declare them (identical in both; docs/cuda.md): opaque handles, int-sized enums, and the
// output descriptor of four channel pointers and four size_t pitches.
#pragma once
#include <cstddef>

struct CUstream_st;

namespace vitmsn {
namespace nvjpeg {

using Handle = struct HandleOpaque*;
using JpegState = struct JpegStateOpaque*;
using Status = int;
using Stream = CUstream_st*;

constexpr Status kSuccess = 0;
constexpr int kMaxComponent = 4;
constexpr int kOutputRgbi = 5;   // NVJPEG_OUTPUT_RGBI: interleaved RGB into channel[0] with pitch[0]
constexpr int kCssGray = 6;      // NVJPEG_CSS_GRAY
constexpr int kCssUnknown = -1;  // NVJPEG_CSS_UNKNOWN

struct Image {
  unsigned char* channel[kMaxComponent];
  size_t pitch[kMaxComponent];
};

// The status names, for error messages.
inline const char* status_name(Status s) {
  static const char* const names[] = {"SUCCESS",
                                      "NOT_INITIALIZED",
                                      "INVALID_PARAMETER",
                                      "BAD_JPEG",
                                      "JPEG_NOT_SUPPORTED",
                                      "ALLOCATOR_FAILURE",
                                      "EXECUTION_FAILED",
                                      "ARCH_MISMATCH",
                                      "INTERNAL_ERROR",
                                      "IMPLEMENTATION_NOT_SUPPORTED",
                                      "INCOMPLETE_BITSTREAM"};
  return s >= 0 && s <= 10 ? names[s] : "unknown status";
}

struct Api {
  Status (*CreateSimple)(Handle* handle) = nullptr;
  Status (*Destroy)(Handle handle) = nullptr;
  Status (*JpegStateCreate)(Handle handle, JpegState* state) = nullptr;
  Status (*JpegStateDestroy)(JpegState state) = nullptr;
  Status (*GetImageInfo)(Handle handle, const unsigned char* data, size_t length, int* components, int* subsampling,
                         int* widths, int* heights) = nullptr;
  Status (*Decode)(Handle handle, JpegState state, const unsigned char* data, size_t length, int output_format,
                   Image* destination, Stream stream) = nullptr;
};

}  // namespace nvjpeg
}  // namespace vitmsn
