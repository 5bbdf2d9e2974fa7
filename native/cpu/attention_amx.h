// Attention with bf16 operands on AMX tiles (TDPBF16PS), for models whose weights are bf16 or int8
// (math and shapes in attention.h; attention() picks it with AttentionPrecision::kBf16).
//
// Per (b, h) the keys and values are converted to bf16 once, in the B-tile (VNNI pair) layouts;
// per task of up to kAmxQB query rows:
//   q̂ = bf16(q · scale)                                     (rows past the task's: 0)
//   S = q̂ · k̂ᵀ                 TDPBF16PS, float32 sums    (whole rows of keys: T ≤ kAmxMaxT)
//   m = max_(j<T) S_j;  p_j = e^(S_j − m) (j < T, else 0);  l = Σ p_j    in float32
//   out = (bf16(p) · v̂) · (head_scale / l)                 TDPBF16PS, float32 sums
// with bf16() round to nearest even (to_bf16 in packed_linear.h). ref_attention_bf16 is this math
// in portable code, which the kernel matches to float rounding; against float32 attention the
// difference is bf16's (q, k, v and p carry 8 significant bits).
//
// Padding: keys are padded to Tk (T rounded up to 32) with zero k̂ and v̂, and their p is 0 (the
// mask is applied before the softmax); query rows are padded to kAmxQB with zero q̂ and p, and
// their outputs are not stored.
#pragma once
#include <cstdint>

#include "cpu/cpu_features.h"
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

constexpr int64_t kAmxQB = 32;      // query rows per task: two 16-row tiles
constexpr int64_t kAmxMaxT = 2048;  // whole score rows of a task ([kAmxQB][T] floats) stay in L2

// Whether attention_amx can run these arguments here: the avx512 path with AMX bf16 usable and
// enabled (amx_enabled(), VITMSN_CPU_AMX), a compiler that built the kernel, no probabilities
// asked, Dh a multiple of 32 and 1 ≤ T ≤ kAmxMaxT.
bool attention_amx_usable(Isa isa, const AttentionArgs& a);
// The kernel (attention_amx.cc drives it); callers check attention_amx_usable first.
void attention_amx(const AttentionArgs& a, ThreadPool& pool);
// The scalar reference of the math above (float32 sums in index order, std::exp), one thread.
void ref_attention_bf16(const AttentionArgs& a);

// ---- the AVX-512 / AMX half (attention_amx_avx512.cc) --------------------------------------------

// One task: rows [0, rows) of q (row r at q + r·ldq) against the packed keys and values of its head.
struct AmxAttentionTile {
  const uint16_t* kp = nullptr;  // k̂ as B tiles: [Tk/16][Dh/2][16 keys][2] (d pairs)
  const uint16_t* vp = nullptr;  // v̂ as B tiles: [Tk/2][Dh][2] (key pairs)
  int64_t T = 0, Tk = 0, Dh = 0;
  const float* q = nullptr;
  int64_t ldq = 0;
  int rows = 0;  // 1 .. kAmxQB
  float scale = 1.0f, head_scale = 1.0f;
  // Scratch, each 64-byte aligned: q̂ [kAmxQB][Dh] bf16, S [kAmxQB][Tk] float, p̂ [kAmxQB][Tk]
  // bf16, O [kAmxQB][Dh] float, l [kAmxQB] float.
  uint16_t* qb = nullptr;
  float* s = nullptr;
  uint16_t* p = nullptr;
  float* o = nullptr;
  float* l = nullptr;
  float* out = nullptr;  // row r at out + r·ldo, Dh floats
  int64_t ldo = 0;
};

// Whether this build has the kernel (a compiler with amx-bf16 and avx512bf16).
bool attention_amx_compiled();
// k̂ and v̂ of one head (key j at kbase + j·stride, value j at vbase + j·stride; Tk a multiple of
// 32, rows T .. Tk zero) into AmxAttentionTile's kp and vp layouts (64-byte aligned).
void attention_amx_pack_kv(const float* kbase, const float* vbase, int64_t stride, int64_t T, int64_t Tk, int64_t Dh,
                           uint16_t* kp, uint16_t* vp);
// Tasks run between attention_amx_begin (loads the tile configuration) and attention_amx_end
// (releases the tiles), on the same thread.
void attention_amx_begin();
void attention_amx_tile(const AmxAttentionTile& t);
void attention_amx_end();

}  // namespace cpu
}  // namespace vitmsn
