#include "preprocess.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace vitmsn {

void check_image(const ImageView& im, const char* what) {
  if (im.width <= 0 || im.height <= 0) {
    throw Error(codes::kImageInvalid,
                std::string(what) + " is empty (" + std::to_string(im.width) + "x" + std::to_string(im.height) + ")");
  }
  if (im.channels < 1 || im.channels > 4) {
    throw Error(codes::kImageInvalid, std::string(what) + " has " + std::to_string(im.channels) +
                                          " channels; 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) are supported");
  }
  if (im.format == PixelFormat::CMYK && im.channels != 4) {
    throw Error(codes::kImageInvalid,
                std::string(what) + ": CMYK pixels need 4 channels, got " + std::to_string(im.channels));
  }
  if (im.format == PixelFormat::I16 && im.channels > 2) {
    throw Error(codes::kImageInvalid,
                std::string(what) + ": 16-bit grey pixels need 1 or 2 channels, got " + std::to_string(im.channels));
  }
  const uint64_t sample = im.format == PixelFormat::I16 ? 2 : 1;
  const uint64_t row = static_cast<uint64_t>(im.channels) * static_cast<uint64_t>(im.width) * sample;
  if (im.width > (int64_t{1} << 30) || im.height > (int64_t{1} << 30) || im.data == nullptr ||
      im.bytes / row != static_cast<uint64_t>(im.height) || im.bytes % row != 0) {
    throw Error(codes::kImageInvalid, std::string(what) + ": " + std::to_string(im.bytes) + " bytes do not hold " +
                                          std::to_string(im.width) + "x" + std::to_string(im.height) + "x" +
                                          std::to_string(im.channels) + (sample == 2 ? " 16-bit pixels" : " pixels"));
  }
}

namespace {

// Pillow's MULDIV255: a·b/255 rounded, in integers.
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

inline uint8_t clip8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

}  // namespace

void to_rgb(const ImageView& im, uint8_t* rgb) {
  const int64_t n = im.width * im.height;
  const uint8_t* s = im.data;
  if (im.format == PixelFormat::CMYK) {  // Convert.c cmyk2rgb
    for (int64_t i = 0; i < n; ++i) {
      const int nk = 255 - s[4 * i + 3];
      for (int c = 0; c < 3; ++c) rgb[3 * i + c] = clip8(nk - muldiv255(s[4 * i + c], nk));
    }
    return;
  }
  if (im.format == PixelFormat::I16) {  // mode "I" → RGB: Convert.c i2rgb clamps each value to 0..255
    const uint16_t* v = reinterpret_cast<const uint16_t*>(s);
    const int step = im.channels;
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t x = v[step * i];
      rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = static_cast<uint8_t>(x > 255 ? 255 : x);
    }
    return;
  }
  switch (im.channels) {
    case 1:
      for (int64_t i = 0; i < n; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = s[i];
      break;
    case 2:
      for (int64_t i = 0; i < n; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = s[2 * i];
      break;
    case 3:
      std::copy(s, s + 3 * n, rgb);
      break;
    default:
      for (int64_t i = 0; i < n; ++i) {
        rgb[3 * i] = s[4 * i];
        rgb[3 * i + 1] = s[4 * i + 1];
        rgb[3 * i + 2] = s[4 * i + 2];
      }
      break;
  }
}

void normalize_to_chw(const uint8_t* rgb, int64_t w, int64_t h, const PreprocessConfig& cfg, float* out) {
  // 256-entry table per channel: every uint8 level maps to one float, computed exactly as HF does.
  float table[3][256];
  pixel_table(cfg.pixel_norm(), table);
  const int64_t plane = w * h;
  for (int64_t i = 0; i < plane; ++i) {
    out[i] = table[0][rgb[3 * i]];
    out[plane + i] = table[1][rgb[3 * i + 1]];
    out[2 * plane + i] = table[2][rgb[3 * i + 2]];
  }
}

std::pair<int64_t, int64_t> preprocessed_size(const ImageView& im, const PreprocessConfig& cfg) {
  if (cfg.do_resize) return {cfg.height, cfg.width};
  return {im.height, im.width};
}

namespace {

// convert("RGB") then Pillow's resize when asked: calls `use` with the resulting [H, W, 3] RGB
// image (the input itself when it is RGB already and keeps its size).
template <class Use>
void rgb_resized(const ImageView& im, const PreprocessConfig& cfg, Use&& use, uint8_t* resize_into = nullptr) {
  check_image(im, "image");
  auto [H, W] = preprocessed_size(im, cfg);
  // convert("RGB") first, as HF does (alpha is dropped before resampling, not resampled with it);
  // RGB input is used in place.
  std::vector<uint8_t> converted;
  const uint8_t* rgb = im.data;
  if (im.channels != 3 || im.format != PixelFormat::U8) {
    converted.resize(static_cast<size_t>(im.width * im.height * 3));
    to_rgb(im, converted.data());
    rgb = converted.data();
  }
  if (cfg.do_resize && (H != im.height || W != im.width)) {
    std::vector<uint8_t> resized;
    uint8_t* dst = resize_into;
    if (!dst) {
      resized.resize(static_cast<size_t>(H * W * 3));
      dst = resized.data();
    }
    resize_u8(rgb, im.width, im.height, 3, dst, W, H, cfg.resample);
    use(static_cast<const uint8_t*>(dst), W, H);
  } else {
    use(rgb, im.width, im.height);
  }
}

}  // namespace

void preprocess_image(const ImageView& im, const PreprocessConfig& cfg, float* out) {
  rgb_resized(im, cfg, [&](const uint8_t* rgb, int64_t w, int64_t h) { normalize_to_chw(rgb, w, h, cfg, out); });
}

void preprocess_image_u8(const ImageView& im, const PreprocessConfig& cfg, uint8_t* out) {
  // The resize writes straight into `out`; otherwise the RGB image is copied there.
  rgb_resized(
      im, cfg,
      [&](const uint8_t* rgb, int64_t w, int64_t h) {
        if (rgb != out) std::copy(rgb, rgb + w * h * 3, out);
      },
      out);
}

}  // namespace vitmsn
