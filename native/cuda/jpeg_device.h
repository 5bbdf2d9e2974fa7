// GPU JPEG decoding for the embed path (opt-in): nvJPEG (opened at run time, cuda/nvjpeg_loader.h)
// decodes a file into interleaved RGB in device memory, then Pillow's resize runs on the device
// (cuda/resize.cu) with the CPU resize's own coefficient tables, so the resize is exact and only the
// decoder differs from the CPU path (nvJPEG's IDCT and chroma upsampling are not libjpeg-turbo's;
// the deviation is measured by scripts/gpu-check.sh and recorded in bench/GPU-RESULTS.md).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>

#include "backend/resize_pass.h"
#include "cuda/nvjpeg_api.h"

namespace vitmsn {
namespace cuda {

class JpegDeviceDecoder {
 public:
  // Throws ERR_DEVICE_UNAVAILABLE when nvJPEG cannot be loaded or set up (the message says why).
  explicit JpegDeviceDecoder(cudaStream_t stream);
  ~JpegDeviceDecoder();
  JpegDeviceDecoder(const JpegDeviceDecoder&) = delete;
  JpegDeviceDecoder& operator=(const JpegDeviceDecoder&) = delete;

  // Pillow's coefficient tables for an axis in_size → out_size (engine/image/resample.h's resize_taps).
  using TapsFor = std::function<ResizeTaps(int64_t in_size, int64_t out_size)>;

  struct Decoded {
    bool ok = false;
    std::string why;  // when not ok: what the file is that this decoder leaves to the CPU path
    int64_t width = 0, height = 0;
  };
  // Decodes `n` bytes of a JPEG file (host memory) and resizes it into dst (device memory, out_h ·
  // out_w · 3 bytes), queued on the stream. Not ok (nothing written) for files it does not take:
  // not a 3-component JPEG, or one nvJPEG reports it cannot decode — the caller decodes those on
  // the CPU. CUDA failures throw (cuda/cuda_check.h).
  Decoded decode_resized(const uint8_t* data, size_t n, uint8_t* dst, int64_t out_w, int64_t out_h,
                         const TapsFor& taps);

 private:
  uint8_t* grow(uint8_t*& buf, size_t& cap, size_t bytes);

  const nvjpeg::Api* api_ = nullptr;
  nvjpeg::Handle handle_ = nullptr;
  nvjpeg::JpegState state_ = nullptr;
  cudaStream_t stream_ = nullptr;
  uint8_t *decoded_ = nullptr, *mid_ = nullptr, *taps_ = nullptr;
  size_t decoded_cap_ = 0, mid_cap_ = 0, taps_cap_ = 0;
};

}  // namespace cuda
}  // namespace vitmsn
