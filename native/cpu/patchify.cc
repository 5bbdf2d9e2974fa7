// Patchify (math and shapes in patchify.h). Pure data movement: each (c, ky) of a patch is a run
// of p contiguous pixels in x and in the patch row, so the copy moves runs of p floats. Threads
// split the B·gh rows of patches. patchify_pixels gathers from a per-channel table of the 256
// values (pixel_value computed once per level, as the float32 preprocessing does).
#include "cpu/patchify.h"

#include <cstring>

#include "common/error.h"

namespace vitmsn {
namespace cpu {

void patchify(const PatchifyArgs& a, ThreadPool& pool) {
  if (a.B < 0 || a.C < 0 || a.Himg < 0 || a.Wimg < 0) throw Error(codes::kInternal, "patchify: negative dimension");
  if (a.p <= 0) throw Error(codes::kInternal, "patchify: patch size must be positive");
  const int64_t B = a.B, C = a.C, Hi = a.Himg, Wi = a.Wimg, p = a.p;
  const int64_t gh = Hi / p, gw = Wi / p, row_len = C * p * p;
  if (B == 0 || C == 0 || gh == 0 || gw == 0) return;
  if (!a.x || !a.patches) throw Error(codes::kInternal, "patchify: null operand");
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {  // r = b·gh + py
      const int64_t b = r / gh, py = r % gh;
      for (int64_t px = 0; px < gw; ++px) {
        float* dst = a.patches + (r * gw + px) * row_len;
        for (int64_t c = 0; c < C; ++c) {
          const float* src = a.x + ((b * C + c) * Hi + py * p) * Wi + px * p;
          for (int64_t ky = 0; ky < p; ++ky) {
            std::memcpy(dst + (c * p + ky) * p, src + ky * Wi, static_cast<size_t>(p) * sizeof(float));
          }
        }
      }
    }
  };
  // A copy: every float read once and written once.
  pool.parallel_for(B * gh, body, 2 * B * gh * gw * row_len);
}

void patchify_pixels(const PatchifyPixelsArgs& a, ThreadPool& pool) {
  if (a.B < 0 || a.Himg < 0 || a.Wimg < 0) throw Error(codes::kInternal, "patchify_pixels: negative dimension");
  if (a.p <= 0) throw Error(codes::kInternal, "patchify_pixels: patch size must be positive");
  const int64_t B = a.B, Hi = a.Himg, Wi = a.Wimg, p = a.p;
  const int64_t gh = Hi / p, gw = Wi / p, row_len = 3 * p * p;
  if (B == 0 || gh == 0 || gw == 0) return;
  if (!a.pixels || !a.patches) throw Error(codes::kInternal, "patchify_pixels: null operand");
  float table[3][256];
  pixel_table(a.norm, table);
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {  // r = b·gh + py
      const int64_t b = r / gh, py = r % gh;
      for (int64_t px = 0; px < gw; ++px) {
        float* dst = a.patches + (r * gw + px) * row_len;
        for (int64_t ky = 0; ky < p; ++ky) {
          const uint8_t* src = a.pixels + ((b * Hi + py * p + ky) * Wi + px * p) * 3;
          float* d0 = dst + ky * p;
          for (int64_t kx = 0; kx < p; ++kx) {
            d0[kx] = table[0][src[3 * kx]];
            d0[p * p + kx] = table[1][src[3 * kx + 1]];
            d0[2 * p * p + kx] = table[2][src[3 * kx + 2]];
          }
        }
      }
    }
  };
  pool.parallel_for(B * gh, body, 2 * B * gh * gw * row_len);
}

}  // namespace cpu
}  // namespace vitmsn
