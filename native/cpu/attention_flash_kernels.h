// Per-ISA halves of the flash attention kernel (attention_flash.cc splits the work and packs the
// operands; the math is in attention.h). One call handles one query block of one (b, h):
//
//   for each block of kFlashKB keys:                         (Kᵀ and V of the block stay in L1)
//     for each group of query rows:                           (every group reuses the block)
//       x = S·scale − m            S = q·kᵀ of the group × block, in registers
//       if some x > kFlashTau:     m ← max(m, block max); O ← O·e^(m_old − m); l ← l·e^(m_old − m)
//       p = e^x;  l += Σ p;  O += p·V
//   out = O · (head_scale / l)
//
// m is a reference value per row, not necessarily the running max: it is raised only when a score
// passes it by more than kFlashTau, so most blocks skip the rescale (and the horizontal max that
// decides it). p then stays ≤ e^kFlashTau and l ≤ T·e^kFlashTau, far from float overflow, and
// float's relative precision does not depend on the scale, so the result is as accurate as with
// the exact max. The first block of every row always sets m (it starts at −∞).
//
// Each ISA lives in its own .cc compiled for that ISA (isa_target.h; see gemm_kernels.h for why
// they use intrinsics and their own static functions only).
#pragma once
#include <cstdint>

namespace vitmsn {
namespace cpu {

constexpr int64_t kFlashKB = 32;       // keys per block: Kᵀ + V of a block = 2·32·Dh floats (16 KiB at Dh 64)
constexpr int64_t kFlashQB = 40;       // most query rows per task (a multiple of the AVX2 group size)
constexpr int kFlashGroupAvx512 = 14;  // most query rows per AVX-512 group (see attention_flash_avx512.cc)
constexpr float kFlashTau = 8.0f;      // rescale only when a score passes m by more than this

struct FlashTile {
  // Packed per (b, h) by the driver, shared by the tasks of that head:
  const float* kt = nullptr;  // [nkb][Dh][kFlashKB]: block kb holds Kᵀ of keys kb·KB ..; keys ≥ T are 0
  const float* v = nullptr;   // [nkb·KB][Dhp]: V rows, zero rows past T and zero columns past Dh
  int64_t T = 0, Dh = 0, Dhp = 0, nkb = 0;  // Dhp = Dh rounded up to 16
  // This task's query rows, read in place from qkv: row r at q + r·ldq for r < rows. Groups run
  // whole, so rows past `rows` repeat the last real row (finite scores, never stored).
  const float* q = nullptr;
  int64_t ldq = 0;
  int rows = 0;
  float scale = 1.0f, head_scale = 1.0f;
  // Scratch of the task, 64-byte aligned: O [kFlashQB][Dhp], l [kFlashQB][16] (16 partial sums per
  // row), m [kFlashQB], p [kFlashQB][kFlashKB], qp [⌈kFlashQB / kFlashGroupAvx512⌉][Dh][kFlashGroupAvx512]
  // (the AVX-512 path's packed, scaled q groups).
  float* o = nullptr;
  float* l = nullptr;
  float* m = nullptr;
  float* p = nullptr;
  float* qp = nullptr;
  // Output row r (< rows) goes to out + r·ldo, Dh floats.
  float* out = nullptr;
  int64_t ldo = 0;
};

// dst[r·ld + i] = src[r·stride + i] for r < rows, i < n; 0 for n ≤ i < ld and rows ≤ r < total_rows.
// Packs V with inline vector copies (no memcpy call per 256-byte row).
void flash_pack_rows_avx512(const float* src, int64_t stride, int64_t rows, int64_t n, int64_t ld, int64_t total_rows,
                            float* dst);

void flash_tile_scalar(const FlashTile& t);  // portable C++ (also the NEON path)
void flash_tile_avx2(const FlashTile& t);
void flash_tile_avx512(const FlashTile& t);

}  // namespace cpu
}  // namespace vitmsn
