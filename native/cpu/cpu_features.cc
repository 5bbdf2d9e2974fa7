#include "common/knobs.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm_int8.h"

#include <cstdint>
#include <cstdlib>

#include "common/error.h"

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace vitmsn {
namespace cpu {
namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = (b >> 5) & 1;
  const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  f.avx2_fma = os_ymm && avx2 && fma;
  f.avx512 = f.avx2_fma && os_zmm && f512 && dq && bw && vl;
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avx512_bf16 = f.avx512 && ((a1 >> 5) & 1);
  // AMX: the tile state (XCR0 bits 17–18) must be OS-enabled, and Linux hands the large tile-data
  // state to a process only on request (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, feature 18).
  f.avx512_vnni = f.avx512 && ((c >> 11) & 1);
  const bool amx_tile = ((d >> 24) & 1) && f.avx512, amx_bf16 = (d >> 22) & 1, amx_int8 = (d >> 25) & 1;
  const bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);
#if defined(__linux__) && defined(__x86_64__)
  const bool granted = amx_tile && (amx_bf16 || amx_int8) && os_amx &&
                       ::syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) == 0;
  f.amx_bf16 = granted && amx_bf16;
  f.amx_int8 = granted && amx_int8;
#else
  (void)amx_tile, (void)amx_bf16, (void)amx_int8, (void)os_amx;
#endif
#elif defined(__aarch64__)
  f.neon = true;
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

namespace {
std::atomic<int>& amx_switch() {
  static std::atomic<int> on{[] { return knobs::flag(knobs::Knob::kCpuAmx) ? 1 : 0; }()};
  return on;
}
}  // namespace

bool amx_enabled() { return cpu_features().amx_bf16 && amx_switch().load(std::memory_order_relaxed) != 0; }
bool amx_int8_enabled() { return cpu_features().amx_int8 && amx_switch().load(std::memory_order_relaxed) != 0; }
void set_amx_enabled(bool on) { amx_switch().store(on ? 1 : 0, std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kNeon:
      return "neon";
    default:
      return "scalar";
  }
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::kAvx512:
      return f.avx512;
    case Isa::kAvx2:
      return f.avx2_fma;
    case Isa::kNeon:
      return f.neon;
    default:
      return true;
  }
}

Isa parse_isa(const std::string& name) {
  Isa isa;
  if (name == "scalar")
    isa = Isa::kScalar;
  else if (name == "avx2")
    isa = Isa::kAvx2;
  else if (name == "avx512")
    isa = Isa::kAvx512;
  else if (name == "neon")
    isa = Isa::kNeon;
  else
    throw Error(codes::kDeviceUnavailable, "VITMSN_CPU_ISA='" + name + "' is not a CPU path (use " +
                                               knobs::spec(knobs::Knob::kCpuIsa).values + ")");
  if (!isa_supported(isa)) {
    throw Error(codes::kDeviceUnavailable,
                std::string("VITMSN_CPU_ISA=") + name + " asks for a path this CPU (or OS) does not support");
  }
  return isa;
}

Isa select_isa() {
  if (const std::string name = knobs::text(knobs::Knob::kCpuIsa); !name.empty()) return parse_isa(name);
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  if (isa_supported(Isa::kNeon)) return Isa::kNeon;
  return Isa::kScalar;
}

std::string isa_summary(Isa chosen) {
  const CpuFeatures& f = cpu_features();
  std::string s = std::string("kernels: ") + isa_name(chosen);
  if (chosen == Isa::kAvx512) {
    s += amx_enabled()   ? " (bfloat16 via AMX tiles)"
         : f.avx512_bf16 ? " (bfloat16 via avx512_bf16)"
                         : " (bfloat16 via fp32 conversion)";
  }
  s += std::string(", int8: ") + int8_path_name(int8_path_for(chosen));
  return s;
}

}  // namespace cpu
}  // namespace vitmsn
