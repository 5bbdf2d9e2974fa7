// The frame of a kernel file compiled for one instruction set: every function between
// VITMSN_TARGET_BEGIN("avx2,fma") and VITMSN_TARGET_END is compiled for that ISA, whatever the
// build's baseline (the same source in the CMake and gyp builds, no per-file flags), and is called
// only after cpu_features() says the CPU can run it.
//
// The ISA kernel files (*_avx2.cc, *_avx512.cc: x86; *_neon.cc: arm64) are compiled only for their
// architecture (CMakeLists.txt, scripts/gyp-sources.js), so they need no fallback for the others;
// the drivers name their functions only under `if constexpr (kX86Kernels)` (kArm64Kernels), which
// other builds discard without needing a definition (C++17 [basic.def.odr]: odr-use in a
// discarded statement). A driver's own helper that calls x86 kernels (e.g. a fused op's block
// loop) is itself defined only under `#if VITMSN_X86_KERNELS` and declared for all: a function
// body is never discarded, so at -O0 its calls would otherwise stay as undefined references.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#define VITMSN_X86_KERNELS 1
#else
#define VITMSN_X86_KERNELS 0
#endif

namespace vitmsn {
namespace cpu {

inline constexpr bool kX86Kernels = VITMSN_X86_KERNELS != 0;
#if defined(__aarch64__)
inline constexpr bool kArm64Kernels = true;
#else
inline constexpr bool kArm64Kernels = false;
#endif

}  // namespace cpu
}  // namespace vitmsn

// The target strings the x86 kernel files use.
#define VITMSN_ISA_AVX2 "avx2,fma"
#define VITMSN_ISA_AVX512 "avx512f,avx512bw,avx512vl,avx512dq,fma,avx2"
#define VITMSN_ISA_AVX512_BMI2 "avx512f,avx512bw,avx512vl,avx512dq,fma,avx2,bmi2"
#define VITMSN_ISA_AVX512_BF16 "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,bmi2"

#define VITMSN_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define VITMSN_TARGET_BEGIN(isa) VITMSN_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define VITMSN_TARGET_END VITMSN_PRAGMA(clang attribute pop)
#else
#define VITMSN_TARGET_BEGIN(isa) VITMSN_PRAGMA(GCC push_options) VITMSN_PRAGMA(GCC target(isa))
#define VITMSN_TARGET_END VITMSN_PRAGMA(GCC pop_options)
#endif
