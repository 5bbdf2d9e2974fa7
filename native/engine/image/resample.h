// Pillow's convolution resize (Image.resize with BILINEAR and its siblings), reproduced to the bit
// for 8-bit images: HF's PIL image processor resizes with it, so an encoder that wants HF's numbers
// must produce the same uint8 pixels (docs/model.md, "Image preprocessing").
#pragma once
#include <cstdint>
#include <vector>

#include "backend/resize_pass.h"

namespace vitmsn {

// PIL.Image resampling constants (the `resample` field of preprocessor_config.json).
enum class ResampleFilter : int { Lanczos = 1, Bilinear = 2, Bicubic = 3, Box = 4, Hamming = 5 };

// True for the `resample` values resize_u8 implements (NEAREST = 0 is a different algorithm).
bool is_supported_filter(int pil_resample);

// Resizes an interleaved 8-bit image [in_h, in_w, channels] to [out_h, out_w, channels] the way
// Pillow's ImagingResample does (separable, horizontal pass first into uint8, fixed-point
// coefficients with 22 fraction bits, an axis whose size is unchanged is not resampled).
// `out` must hold out_h·out_w·channels bytes. Throws vitmsn::Error on bad sizes.
void resize_u8(const uint8_t* in, int64_t in_w, int64_t in_h, int channels, uint8_t* out, int64_t out_w, int64_t out_h,
               ResampleFilter filter);

// Pillow's coefficient tables of one axis (in_size → out_size), as resize_u8 computes them: output
// position o reads count[o] source positions from first[o] with the fixed-point weights
// k[o·ksize ..] (22 fraction bits). For a device resize (backend/resize_pass.h) that must produce
// resize_u8's bytes.
ResizeTaps resize_taps(int64_t in_size, int64_t out_size, ResampleFilter filter);

// Scalar reference: the same arithmetic written directly per output pixel (coefficients recomputed
// for every pixel, no row reuse); tests check resize_u8 against it on awkward shapes.
void resize_u8_reference(const uint8_t* in, int64_t in_w, int64_t in_h, int channels, uint8_t* out, int64_t out_w,
                         int64_t out_h, ResampleFilter filter);

}  // namespace vitmsn
