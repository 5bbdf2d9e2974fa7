// The per-ISA half of the fused qkv + attention op (driver in qkv_attention.cc): one (image,
// head)'s q, k and v, projected from the image's packed rows into the flash kernel's layouts.
#pragma once
#include <cstdint>

#include "cpu/packed_linear.h"

namespace vitmsn {
namespace cpu {

struct QkvHead {
  const float* a_tiles = nullptr;  // the image's rows packed as GEMM A tiles (gemm_pack_a_avx512)
  int64_t tile_stride = 0;
  int64_t T = 0;                    // rows (tokens) of the image
  const PackedLinear* W = nullptr;  // [3·H·Dh, D] float32 panels; head h's q, k, v are whole panels
  const float* bias = nullptr;      // [3·H·Dh] or null
  int64_t H = 0, h = 0, Dh = 0;     // Dh a multiple of 32
  float* q = nullptr;               // [T][Dh]
  float* kt = nullptr;              // [⌈T/32⌉][Dh][32] (FlashTile::kt); the caller zeroes the last block first
  float* v = nullptr;               // [⌈T/32⌉·32][Dh]; the caller zeroes rows past T
};

void qkv_head_avx512(const QkvHead& a);

}  // namespace cpu
}  // namespace vitmsn
