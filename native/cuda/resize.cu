// Pillow's convolution resize of one 8-bit RGB image on the device (the embed path's GPU decoding):
// the per-sample functions of backend/resize_pass.h, one thread per output sample, with the
// coefficient tables the CPU resize computes (engine/image/resample.h, resize_taps) — so the bytes
// equal resize_u8's; test_engine_preprocess runs the same functions over every index on the CPU.
#include "backend/resize_pass.h"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void horizontal_kernel(const uint8_t* src, int64_t in_w, uint8_t* dst, int64_t out_w, ResizeAxisView t,
                                  int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) resize_horizontal_at(src, in_w, dst, out_w, t, i);
}

__global__ void vertical_kernel(const uint8_t* src, int64_t width, int64_t row_shift, uint8_t* dst, ResizeAxisView t,
                                int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) resize_vertical_at(src, width, row_shift, dst, t, i);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

void resize_rgb(const uint8_t* src, int64_t in_w, int64_t in_h, uint8_t* dst, int64_t out_w, int64_t out_h,
                const ResizePlan& plan, const ResizeAxisView& h, const ResizeAxisView& v, uint8_t* mid,
                cudaStream_t s) {
  if (!plan.horizontal && !plan.vertical) {
    cudaMemcpyAsync(dst, src, static_cast<size_t>(in_w * in_h * 3), cudaMemcpyDeviceToDevice, s);
    return;
  }
  const uint8_t* rows = src + plan.row_first * in_w * 3;
  if (plan.horizontal) {
    uint8_t* out = plan.vertical ? mid : dst;
    const int64_t n = plan.rows * out_w * 3;
    horizontal_kernel<<<blocks_for(n), kThreads, 0, s>>>(rows, in_w, out, out_w, h, n);
    rows = out;
  }
  if (plan.vertical) {
    const int64_t n = out_h * out_w * 3;
    vertical_kernel<<<blocks_for(n), kThreads, 0, s>>>(rows, out_w, plan.horizontal ? plan.row_first : 0, dst, v, n);
  }
}

}  // namespace cuda
}  // namespace vitmsn
