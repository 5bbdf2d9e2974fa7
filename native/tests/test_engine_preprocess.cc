// Image preprocessing kernels: resize_u8 (the fast Pillow resize) against its per-pixel scalar
// reference on awkward shapes, every filter and channel count, shrinking, enlarging and one axis
// unchanged; convert("RGB") and the normalisation table; bad images become ERR_IMAGE_INVALID.
// Pillow's own outputs are checked from vitest (test/preprocess.test.ts). Prints "N passed, M failed".
#include "tests/harness.h"
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/resize_pass.h"
#include "common/error.h"
#include "engine/image/preprocess.h"
#include "engine/image/resample.h"
#include "engine/model/pooling.h"

using namespace vitmsn;

namespace {

Rng g_rng(1);
uint8_t next_byte() { return static_cast<uint8_t>(g_rng.next() >> 56); }

void resize_case(int64_t iw, int64_t ih, int c, int64_t ow, int64_t oh, ResampleFilter f, bool smooth) {
  std::vector<uint8_t> in(static_cast<size_t>(iw * ih * c));
  for (size_t i = 0; i < in.size(); ++i) in[i] = smooth ? static_cast<uint8_t>((i * 7 / c) % 256) : next_byte();
  std::vector<uint8_t> a(static_cast<size_t>(ow * oh * c), 1), b(a.size(), 2);
  resize_u8(in.data(), iw, ih, c, a.data(), ow, oh, f);
  resize_u8_reference(in.data(), iw, ih, c, b.data(), ow, oh, f);
  size_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
  check(diff == 0, "resize " + std::to_string(iw) + "x" + std::to_string(ih) + "x" + std::to_string(c) + " -> " +
                       std::to_string(ow) + "x" + std::to_string(oh) + " filter " +
                       std::to_string(static_cast<int>(f)) + ": " + std::to_string(diff) + " bytes differ");
}

// The device resize (cuda/resize.cu) on the CPU: its plan and per-sample functions run over every
// index its kernels' threads take, with the tables of resize_taps, against resize_u8.
std::vector<uint8_t> resize_by_passes(const std::vector<uint8_t>& in, int64_t iw, int64_t ih, int64_t ow, int64_t oh,
                                      ResampleFilter f) {
  const ResizeTaps th = resize_taps(iw, ow, f), tv = resize_taps(ih, oh, f);
  const ResizeAxisView h{th.first.data(), th.count.data(), th.k.data(), th.ksize};
  const ResizeAxisView v{tv.first.data(), tv.count.data(), tv.k.data(), tv.ksize};
  const ResizePlan plan = resize_plan(iw, ih, ow, oh, tv.first.data(), tv.count.data());
  std::vector<uint8_t> out(static_cast<size_t>(ow * oh * 3), 7);
  if (!plan.horizontal && !plan.vertical) return in;
  std::vector<uint8_t> mid(static_cast<size_t>(plan.rows * ow * 3), 9);
  const uint8_t* rows = in.data() + plan.row_first * iw * 3;
  if (plan.horizontal) {
    uint8_t* dst = plan.vertical ? mid.data() : out.data();
    for (int64_t i = 0; i < plan.rows * ow * 3; ++i) resize_horizontal_at(rows, iw, dst, ow, h, i);
    rows = dst;
  }
  if (plan.vertical) {
    const int64_t shift = plan.horizontal ? plan.row_first : 0;
    for (int64_t i = 0; i < oh * ow * 3; ++i) resize_vertical_at(rows, ow, shift, out.data(), v, i);
  }
  return out;
}

void device_resize_case(int64_t iw, int64_t ih, int64_t ow, int64_t oh, ResampleFilter f) {
  std::vector<uint8_t> in(static_cast<size_t>(iw * ih * 3)), want(static_cast<size_t>(ow * oh * 3));
  for (auto& b : in) b = next_byte();
  resize_u8(in.data(), iw, ih, 3, want.data(), ow, oh, f);
  const std::vector<uint8_t> got = resize_by_passes(in, iw, ih, ow, oh, f);
  size_t diff = 0;
  for (size_t i = 0; i < want.size(); ++i) diff += got[i] != want[i];
  check(got.size() == want.size() && diff == 0,
        "device resize passes " + std::to_string(iw) + "x" + std::to_string(ih) + " -> " + std::to_string(ow) + "x" +
            std::to_string(oh) + " filter " + std::to_string(static_cast<int>(f)) + ": " + std::to_string(diff) +
            " bytes differ");
}

}  // namespace

int main() {
  const ResampleFilter filters[] = {ResampleFilter::Bilinear, ResampleFilter::Bicubic, ResampleFilter::Lanczos,
                                    ResampleFilter::Box, ResampleFilter::Hamming};
  const int64_t sizes[][4] = {{640, 480, 224, 224}, {1, 1, 224, 224},     {1, 7, 3, 2},         {5, 3, 1, 1},
                              {224, 224, 224, 224}, {300, 224, 224, 224}, {224, 301, 224, 224}, {17, 13, 31, 29},
                              {1000, 3, 7, 5},      {3, 1000, 5, 7},      {449, 223, 224, 224}, {2, 2, 3, 3}};
  for (ResampleFilter f : filters) {
    for (const auto& s : sizes) {
      for (int c = 1; c <= 4; ++c) resize_case(s[0], s[1], c, s[2], s[3], f, false);
    }
    resize_case(97, 61, 3, 224, 224, f, true);
  }

  for (ResampleFilter f : filters) {
    for (const auto& s : sizes) device_resize_case(s[0], s[1], s[2], s[3], f);
    device_resize_case(640, 480, 224, 224, f);
    device_resize_case(224, 480, 224, 224, f);  // vertical pass only
    device_resize_case(640, 224, 224, 224, f);  // horizontal pass only
  }

  // An unchanged size is a copy (Pillow does not resample that axis).
  {
    std::vector<uint8_t> in(5 * 4 * 3), out(in.size());
    for (auto& v : in) v = next_byte();
    resize_u8(in.data(), 5, 4, 3, out.data(), 5, 4, ResampleFilter::Bicubic);
    check(in == out, "same-size resize is a copy");
  }
  // A constant image stays constant through every filter (weights sum to one after rounding).
  for (ResampleFilter f : filters) {
    std::vector<uint8_t> in(37 * 23 * 3, 200), out(224 * 224 * 3);
    resize_u8(in.data(), 37, 23, 3, out.data(), 224, 224, f);
    bool ok = true;
    for (uint8_t v : out) ok = ok && v == 200;
    check(ok, "constant image stays constant, filter " + std::to_string(static_cast<int>(f)));
  }

  // convert("RGB"): L replicated, LA and RGBA lose alpha untouched.
  {
    const uint8_t la[] = {10, 255, 20, 0};
    ImageView v{la, 2, 1, 2, sizeof la};
    uint8_t rgb[6];
    to_rgb(v, rgb);
    check(rgb[0] == 10 && rgb[1] == 10 && rgb[2] == 10 && rgb[3] == 20 && rgb[5] == 20, "LA -> RGB");
    const uint8_t rgba[] = {1, 2, 3, 0, 4, 5, 6, 128};
    ImageView w{rgba, 2, 1, 4, sizeof rgba};
    to_rgb(w, rgb);
    check(rgb[0] == 1 && rgb[2] == 3 && rgb[3] == 4 && rgb[5] == 6, "RGBA -> RGB drops alpha without compositing");
  }

  // convert("RGB") from CMYK (Pillow's cmyk2rgb) and from 16-bit grey (mode I: clamped at 255).
  {
    const uint8_t cmyk[] = {0, 0, 0, 0, 255, 128, 0, 0, 100, 0, 50, 100};
    ImageView v{cmyk, 3, 1, 4, sizeof cmyk, PixelFormat::CMYK};
    uint8_t rgb[9];
    to_rgb(v, rgb);
    // nk = 155: 155 − round(100·155/255) = 155 − 61 = 94, 155 − 0, 155 − round(50·155/255) = 155 − 30 = 125
    check(rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255 && rgb[3] == 0 && rgb[4] == 127 && rgb[5] == 255 &&
              rgb[6] == 94 && rgb[7] == 155 && rgb[8] == 125,
          "CMYK -> RGB as Pillow's cmyk2rgb");
    const uint16_t grey[] = {0, 7, 254, 255, 256, 65535};
    ImageView g{reinterpret_cast<const uint8_t*>(grey), 6, 1, 1, sizeof grey, PixelFormat::I16};
    uint8_t rgb6[18];
    to_rgb(g, rgb6);
    check(rgb6[0] == 0 && rgb6[3] == 7 && rgb6[6] == 254 && rgb6[9] == 255 && rgb6[12] == 255 && rgb6[15] == 255 &&
              rgb6[16] == 255 && rgb6[17] == 255,
          "16-bit grey -> RGB clamps at 255");
    const uint16_t grey_a[] = {300, 0, 12, 65535};
    ImageView ga{reinterpret_cast<const uint8_t*>(grey_a), 2, 1, 2, sizeof grey_a, PixelFormat::I16};
    to_rgb(ga, rgb6);
    check(rgb6[0] == 255 && rgb6[3] == 12 && rgb6[5] == 12, "16-bit grey with a decoder's alpha -> RGB");
    expect_error("4 channels", codes::kImageInvalid, "", [&] {
      check_image(ImageView{cmyk, 1, 1, 3, 3, PixelFormat::CMYK}, "image");
    });
    expect_error("16-bit", codes::kImageInvalid, "", [&] {
      check_image(ImageView{cmyk, 3, 1, 1, 3, PixelFormat::I16}, "image");
    });
  }

  // Normalisation: HF's arithmetic, and CHW order.
  {
    PreprocessConfig cfg;
    const uint8_t px[] = {0, 128, 255, 7, 8, 9};
    float out[6];
    normalize_to_chw(px, 2, 1, cfg, out);
    float r0 = (static_cast<float>(0 * (1.0 / 255.0)) - 0.485f) / 0.229f;
    float g0 = (static_cast<float>(128 * (1.0 / 255.0)) - 0.456f) / 0.224f;
    float b1 = (static_cast<float>(9 * (1.0 / 255.0)) - 0.406f) / 0.225f;
    check(out[0] == r0 && out[2] == g0 && out[5] == b1, "normalize values and CHW layout");
    cfg.do_rescale = false;
    cfg.do_normalize = false;
    normalize_to_chw(px, 2, 1, cfg, out);
    check(out[0] == 0.f && out[1] == 7.f && out[3] == 8.f && out[4] == 255.f, "no rescale, no normalize: raw levels");
  }

  // Bad images.
  {
    PreprocessConfig cfg;
    std::vector<float> out(3 * 224 * 224);
    const uint8_t px[12] = {};
    expect_error("0x0", codes::kImageInvalid, "", [&] {
      preprocess_image(ImageView{px, 0, 0, 3, 0}, cfg, out.data());
    });
    expect_error("short buffer", codes::kImageInvalid, "", [&] {
      preprocess_image(ImageView{px, 2, 2, 3, 11}, cfg, out.data());
    });
    expect_error("5 channels", codes::kImageInvalid, "", [&] {
      preprocess_image(ImageView{px, 1, 1, 5, 5}, cfg, out.data());
    });
    expect_error("null data", codes::kImageInvalid, "", [&] {
      preprocess_image(ImageView{nullptr, 1, 1, 3, 3}, cfg, out.data());
    });
    // Sizes whose product overflows must be refused by the size check, not by a huge allocation.
    expect_error("absurd size", codes::kImageInvalid, "", [&] {
      preprocess_image(ImageView{px, int64_t{1} << 40, int64_t{1} << 40, 3, 12}, cfg, out.data());
    });
  }

  // Pooling and softmax.
  {
    ForwardResult r;
    r.B = 1, r.T = 3, r.D = 2;
    r.last_hidden_state = {3, 4, 1, 2, 3, 6};
    std::vector<float> cls = pool(r, Pooling::Cls, false);
    check(cls[0] == 3 && cls[1] == 4, "cls pooling");
    std::vector<float> n = pool(r, Pooling::Cls, true);
    check(std::fabs(n[0] - 0.6f) < 1e-7f && std::fabs(n[1] - 0.8f) < 1e-7f, "l2 normalize");
    std::vector<float> m = pool(r, Pooling::Mean, false);
    check(m[0] == 2 && m[1] == 4, "mean pooling excludes CLS");
    r.hidden_states = {{0, 0, 0, 0, 0, 0}, {9, 8, 0, 0, 0, 0}};
    std::vector<float> pre = pool(r, Pooling::ClsPrenorm, false);
    check(pre[0] == 9 && pre[1] == 8, "cls-prenorm takes the last hidden state");
    std::vector<float> sm = softmax_rows({1000, 1000, 0}, 1, 3);
    check(std::fabs(sm[0] - 0.5f) < 1e-7f && sm[2] == 0.f, "softmax is max-stable");
  }

  return finish();
}
