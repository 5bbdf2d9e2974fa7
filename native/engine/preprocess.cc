#include "preprocess.h"

#include <string>

#include "engine/error.h"

namespace vitmsn {

void check_image(const ImageView& im, const char* what) {
  if (im.width <= 0 || im.height <= 0) {
    throw Error(codes::kImageInvalid, std::string(what) + " is empty (" + std::to_string(im.width) + "x" +
                                          std::to_string(im.height) + ")");
  }
  if (im.channels < 1 || im.channels > 4) {
    throw Error(codes::kImageInvalid, std::string(what) + " has " + std::to_string(im.channels) +
                                          " channels; 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) are supported");
  }
  if (im.width > (int64_t{1} << 30) || im.height > (int64_t{1} << 30) || im.data == nullptr ||
      im.bytes / static_cast<uint64_t>(im.channels) / static_cast<uint64_t>(im.width) !=
          static_cast<uint64_t>(im.height) ||
      im.bytes % (static_cast<uint64_t>(im.channels) * static_cast<uint64_t>(im.width)) != 0) {
    throw Error(codes::kImageInvalid, std::string(what) + ": " + std::to_string(im.bytes) + " bytes do not hold " +
                                          std::to_string(im.width) + "x" + std::to_string(im.height) + "x" +
                                          std::to_string(im.channels) + " pixels");
  }
}

void to_rgb(const ImageView& im, uint8_t* rgb) {
  const int64_t n = im.width * im.height;
  const uint8_t* s = im.data;
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
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      float x = static_cast<float>(v);
      if (cfg.do_rescale) x = static_cast<float>(static_cast<double>(v) * cfg.rescale_factor);
      if (cfg.do_normalize) x = (x - cfg.mean[c]) / cfg.std[c];
      table[c][v] = x;
    }
  }
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

void preprocess_image(const ImageView& im, const PreprocessConfig& cfg, float* out) {
  check_image(im, "image");
  auto [H, W] = preprocessed_size(im, cfg);
  // convert("RGB") first, as HF does (alpha is dropped before resampling, not resampled with it);
  // RGB input is used in place.
  std::vector<uint8_t> converted;
  const uint8_t* rgb = im.data;
  if (im.channels != 3) {
    converted.resize(static_cast<size_t>(im.width * im.height * 3));
    to_rgb(im, converted.data());
    rgb = converted.data();
  }
  if (cfg.do_resize && (H != im.height || W != im.width)) {
    std::vector<uint8_t> resized(static_cast<size_t>(H * W * 3));
    resize_u8(rgb, im.width, im.height, 3, resized.data(), W, H, cfg.resample);
    normalize_to_chw(resized.data(), W, H, cfg, out);
  } else {
    normalize_to_chw(rgb, im.width, im.height, cfg, out);
  }
}

}  // namespace vitmsn
