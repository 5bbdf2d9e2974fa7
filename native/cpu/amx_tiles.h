// The AMX tile configuration both AMX GEMMs load (bf16 in gemm_avx512.cc, int8 in
// gemm_int8_avx512.cc): palette 1, all eight tiles 16 rows × 64 bytes. Plain C++ (no intrinsics):
// include it before a file's VITMSN_TARGET_BEGIN, so no ISA-specific copy of it is made.
#pragma once
#include <cstdint>

namespace vitmsn {
namespace cpu {

struct alignas(64) AmxTileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

inline AmxTileConfig amx_tiles_16x64() {
  AmxTileConfig c{};
  c.palette = 1;
  for (int i = 0; i < 8; ++i) c.colsb[i] = 64, c.rows[i] = 16;
  return c;
}

// Loads c as the tile configuration (LDTILECFG). Not the _tile_loadconfig intrinsic: GCC's names
// only the first 8 bytes of the configuration as its asm input, so the compiler may drop the stores
// of the rest as dead (it did, once the configuration was built in a small out-of-line function:
// palette 1 with no rows, and the first tile instruction faulted). This asm reads all 64 bytes.
inline void amx_load_config(const AmxTileConfig& c) {
#if defined(__x86_64__)
  __asm__ __volatile__("ldtilecfg %0" : : "m"(c));
#else
  (void)c;
#endif
}

}  // namespace cpu
}  // namespace vitmsn
