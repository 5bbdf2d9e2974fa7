// HF's PIL image processor (ViTImageProcessor, transformers 4 default) on decoded 8-bit pixels:
// PIL's convert("RGB"), Pillow's resize, then rescale and normalize into CHW float32
// (docs/model.md, "Image preprocessing"). Decoding (and EXIF orientation) happens before, in sharp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/pixel_norm.h"
#include "engine/image/resample.h"

namespace vitmsn {

// preprocessor_config.json, resolved (lib/preprocessor.ts fills transformers' defaults).
struct PreprocessConfig {
  bool do_resize = true;
  int64_t height = 224, width = 224;  // used when do_resize
  ResampleFilter resample = ResampleFilter::Bilinear;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};

  // The rescale/normalize part, as the embed path's patchify takes it (backend/pixel_norm.h).
  PixelNorm pixel_norm() const {
    PixelNorm n;
    n.do_rescale = do_rescale, n.rescale_factor = rescale_factor, n.do_normalize = do_normalize;
    for (int c = 0; c < 3; ++c) n.mean[c] = mean[c], n.std[c] = std[c];
    return n;
  }
};

// How the samples of an ImageView are stored and what convert("RGB") does with them.
enum class PixelFormat {
  U8,    // 8-bit samples: 1 = L, 2 = LA, 3 = RGB, 4 = RGBA
  CMYK,  // 8-bit C, M, Y, K (4 channels), as PIL holds a CMYK image (Adobe inversion already undone)
  I16,   // 16-bit grey (PIL mode "I" / "I;16" of a 16-bit greyscale PNG / TIFF), native-endian uint16; 1 channel,
         // or 2 where the decoder added an alpha channel (ignored)
};

// Decoded pixels, interleaved [height, width, channels].
struct ImageView {
  const uint8_t* data = nullptr;  // for I16, uint16 samples (2 bytes each, suitably aligned)
  int64_t width = 0, height = 0;
  int channels = 0;
  size_t bytes = 0;  // length of data in bytes, checked against width·height·channels·sample size
  PixelFormat format = PixelFormat::U8;
};

// Throws ERR_IMAGE_INVALID for an empty image or a buffer that does not match its size.
void check_image(const ImageView& im, const char* what);

// PIL's convert("RGB") (Pillow's Convert.c): L, LA, RGB, RGBA: grey replicated, alpha dropped (not
// composited); CMYK: cmyk2rgb, each of R, G, B = (255 − K) − (C·(255 − K))/255 with Pillow's rounded
// division; I / I;16 (16-bit grey): each value clamped to 0..255 and replicated (i2rgb, I16_RGB).
void to_rgb(const ImageView& im, uint8_t* rgb);

// x·rescale_factor in float64 stored as float32, then (x − mean)/std in float32 (pixel_value in
// backend/pixel_norm.h, shared with the embed path), HWC → CHW.
// `rgb` is [h, w, 3]; `out` receives [3, h, w].
void normalize_to_chw(const uint8_t* rgb, int64_t w, int64_t h, const PreprocessConfig& cfg, float* out);

// The whole pipeline for one image; `out` receives [3, H, W] where (H, W) = (cfg.height, cfg.width)
// when resizing, else the image's own size.
void preprocess_image(const ImageView& im, const PreprocessConfig& cfg, float* out);

// The same pipeline up to the resize: `out` receives the uint8 RGB image [H, W, 3] that
// preprocess_image would normalize (the embed path normalizes it inside its patchify).
void preprocess_image_u8(const ImageView& im, const PreprocessConfig& cfg, uint8_t* out);

// (H, W) of preprocess_image's output for this image.
std::pair<int64_t, int64_t> preprocessed_size(const ImageView& im, const PreprocessConfig& cfg);

}  // namespace vitmsn
