#include "cuda/jpeg_device.h"

#include <cstring>
#include <vector>

#include "common/error.h"
#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/nvjpeg_loader.h"

namespace vitmsn {
namespace cuda {
namespace {

void check_nvjpeg(nvjpeg::Status s, const char* what) {
  if (s != nvjpeg::kSuccess)
    throw Error(codes::kDeviceUnavailable, std::string("nvJPEG ") + what + " failed: " + nvjpeg::status_name(s));
}

// One axis's tables packed as int32 [first | count | k] (what one upload carries).
void append_axis(const ResizeTaps& t, std::vector<int32_t>& out) {
  out.insert(out.end(), t.first.begin(), t.first.end());
  out.insert(out.end(), t.count.begin(), t.count.end());
  out.insert(out.end(), t.k.begin(), t.k.end());
}

ResizeAxisView axis_view(const int32_t* base, const ResizeTaps& t) {
  const size_t n = t.first.size();
  return {base, base + n, base + 2 * n, t.ksize};
}

}  // namespace

JpegDeviceDecoder::JpegDeviceDecoder(cudaStream_t stream) : stream_(stream) {
  const NvjpegLibrary& lib = nvjpeg_library();
  if (!lib.api) throw Error(codes::kDeviceUnavailable, "GPU JPEG decoding needs libnvjpeg: " + lib.reason);
  api_ = lib.api;
  check_nvjpeg(api_->CreateSimple(&handle_), "nvjpegCreateSimple");
  const nvjpeg::Status s = api_->JpegStateCreate(handle_, &state_);
  if (s != nvjpeg::kSuccess) {
    api_->Destroy(handle_);
    check_nvjpeg(s, "nvjpegJpegStateCreate");
  }
}

JpegDeviceDecoder::~JpegDeviceDecoder() {
  // Statuses are not checked here: a destructor must not throw, and nothing can be done about them.
  cudaStreamSynchronize(stream_);
  cudaFree(decoded_);
  cudaFree(mid_);
  cudaFree(taps_);
  if (state_) api_->JpegStateDestroy(state_);
  if (handle_) api_->Destroy(handle_);
}

uint8_t* JpegDeviceDecoder::grow(uint8_t*& buf, size_t& cap, size_t bytes) {
  if (bytes <= cap) return buf;
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (JPEG buffers)");  // queued work may still read buf
  check(cudaFree(buf), "cudaFree (JPEG buffers)");
  buf = nullptr, cap = 0;
  check(cudaMalloc(reinterpret_cast<void**>(&buf), bytes), "cudaMalloc (JPEG buffers)");
  cap = bytes;
  return buf;
}

JpegDeviceDecoder::Decoded JpegDeviceDecoder::decode_resized(const uint8_t* data, size_t n, uint8_t* dst, int64_t out_w,
                                                             int64_t out_h, const TapsFor& taps) {
  Decoded r;
  int components = 0, subsampling = nvjpeg::kCssUnknown;
  int widths[nvjpeg::kMaxComponent] = {}, heights[nvjpeg::kMaxComponent] = {};
  const nvjpeg::Status info = api_->GetImageInfo(handle_, data, n, &components, &subsampling, widths, heights);
  if (info != nvjpeg::kSuccess) {
    r.why = std::string("nvjpegGetImageInfo: ") + nvjpeg::status_name(info);
    return r;
  }
  // Grey and CMYK files: what nvJPEG's RGBI output makes of them is not documented to match PIL's
  // convert("RGB"); the CPU path decodes them.
  if (components != 3 || subsampling == nvjpeg::kCssGray || subsampling == nvjpeg::kCssUnknown) {
    r.why = "not a 3-component JPEG (" + std::to_string(components) + " components)";
    return r;
  }
  r.width = widths[0], r.height = heights[0];
  if (r.width <= 0 || r.height <= 0) {
    r.why = "no image size";
    return r;
  }
  const size_t pitch = static_cast<size_t>(r.width) * 3;
  nvjpeg::Image img{};
  img.channel[0] = grow(decoded_, decoded_cap_, pitch * static_cast<size_t>(r.height));
  img.pitch[0] = pitch;
  const nvjpeg::Status dec = api_->Decode(handle_, state_, data, n, nvjpeg::kOutputRgbi, &img, stream_);
  if (dec != nvjpeg::kSuccess) {
    r.why = std::string("nvjpegDecode: ") + nvjpeg::status_name(dec);
    return r;
  }

  const ResizeTaps th = taps(r.width, out_w), tv = taps(r.height, out_h);
  std::vector<int32_t> packed;
  append_axis(th, packed);
  append_axis(tv, packed);
  const int32_t* d_taps = reinterpret_cast<const int32_t*>(grow(taps_, taps_cap_, packed.size() * sizeof(int32_t)));
  // From pageable memory: returns once `packed` has been staged, so it may go out of scope after.
  check(cudaMemcpyAsync(taps_, packed.data(), packed.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync (resize tables)");
  const ResizeAxisView h = axis_view(d_taps, th);
  const ResizeAxisView v = axis_view(d_taps + th.first.size() * 2 + th.k.size(), tv);
  const ResizePlan plan = resize_plan(r.width, r.height, out_w, out_h, tv.first.data(), tv.count.data());
  uint8_t* mid =
      plan.horizontal && plan.vertical ? grow(mid_, mid_cap_, static_cast<size_t>(plan.rows * out_w * 3)) : nullptr;
  resize_rgb(decoded_, r.width, r.height, dst, out_w, out_h, plan, h, v, mid, stream_);
  check_launch("resize_rgb");
  r.ok = true;
  return r;
}

}  // namespace cuda
}  // namespace vitmsn
