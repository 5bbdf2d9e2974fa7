// Which instruction sets the CPU kernels may use, decided once at run time.
//
// Detection reads cpuid and, for the AVX families, xgetbv: the OS must save the ymm (AVX2) or
// zmm/opmask (AVX-512) state on context switches, or using those registers corrupts other
// threads' data. VITMSN_CPU_ISA=scalar|avx2|avx512|neon forces a path (tests, benchmarks);
// forcing one this CPU lacks is refused with ERR_DEVICE_UNAVAILABLE rather than crashing later.
#pragma once
#include <string>

namespace vitmsn {
namespace cpu {

enum class Isa { kScalar, kAvx2, kAvx512, kNeon };

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 + FMA3, with OS ymm support
  bool avx512 = false;       // AVX-512 F/BW/VL/DQ, with OS zmm support
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps)
  bool neon = false;         // aarch64 (NEON is architectural there)
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16, OS-enabled and granted to this process
  bool avx512_vnni = false;  // AVX512_VNNI (vpdpbusd), with avx512
  bool amx_int8 = false;     // AMX-TILE + AMX-INT8, OS-enabled and granted to this process
};

// Whether bf16 GEMMs may use AMX tiles: amx_bf16 and VITMSN_CPU_AMX is not "0". Tests flip it with
// set_amx_enabled to cover both bf16 kernels.
bool amx_enabled();
void set_amx_enabled(bool on);
// The same switch for the int8 GEMMs' AMX path (amx_int8 and VITMSN_CPU_AMX not "0").
bool amx_int8_enabled();

const CpuFeatures& cpu_features();
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);
// The fastest supported path, or the one VITMSN_CPU_ISA names. Throws Error(ERR_DEVICE_UNAVAILABLE)
// when the variable names an unknown path or one this CPU cannot run.
Isa select_isa();
// Parses a path name ("scalar", "avx2", "avx512", "neon"); throws like select_isa.
Isa parse_isa(const std::string& name);
// "avx512 (avx512_bf16: yes)"-style summary for backends().
std::string isa_summary(Isa chosen);

}  // namespace cpu
}  // namespace vitmsn
