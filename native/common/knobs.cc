#include "common/knobs.h"

#include <cstdlib>
#include <sstream>

#include "common/error.h"

namespace vitmsn {
namespace knobs {
namespace {

// README.md's "Environment switches" table is generated from (and checked against) these rows.
const Spec kTable[] = {
    {Knob::kCpuIsa, "VITMSN_CPU_ISA", Kind::kChoice, "scalar|avx2|avx512|neon", 0, 0, "the fastest this CPU supports",
     "process", "forces a CPU kernel path (tests, benchmarks); a path the CPU lacks fails the load"},
    {Knob::kCpuAmx, "VITMSN_CPU_AMX", Kind::kChoice, "0|1", 0, 0, "1", "process",
     "0 keeps bfloat16 and int8 GEMMs off the AMX tiles (AVX512-BF16 / AVX512-VNNI instead), and their "
     "models' attention in float32"},
    {Knob::kCpuMlp, "VITMSN_CPU_MLP", Kind::kChoice, "auto|unfused|fused|slices", 0, 0, "auto", "load",
     "how the CPU runs LayerNorm + fc1 + GELU + fc2 (for measuring the fusion)"},
    {Knob::kCpuQkvAttention, "VITMSN_CPU_QKV_ATTENTION", Kind::kChoice, "auto|unfused|fused", 0, 0, "auto", "load",
     "whether the CPU fuses LayerNorm + qkv projection + attention (for measuring the fusion)"},
    {Knob::kCpuProfile, "VITMSN_CPU_PROFILE", Kind::kChoice, "0|1", 0, 0, "0", "load",
     "1 times every CPU op and prints the totals to stderr when the backend is freed"},
    {Knob::kCpuLayerRows, "VITMSN_CPU_LAYER_ROWS", Kind::kInteger, "0 to 100000000 (0: the whole batch)", 0, 100000000,
     "1600", "load",
     "rows (images × tokens) a bfloat16 or int8 model's encoder layers take at a time on the CPU: a larger batch "
     "runs image group by image group (same results); float32 always runs the whole batch"},
    {Knob::kSpinUs, "VITMSN_SPIN_US", Kind::kInteger, "0 to 100000 (µs)", 0, 100000, "100", "process",
     "how long idle CPU worker threads poll for work before sleeping"},
    {Knob::kCublasLtPath, "VITMSN_CUBLASLT_PATH", Kind::kPath, "a file or folder", 0, 0, "the search in docs/cuda.md",
     "process", "where libcublasLt is looked for first"},
    {Knob::kNvjpegPath, "VITMSN_NVJPEG_PATH", Kind::kPath, "a file or folder", 0, 0, "the search in docs/cuda.md",
     "process", "where libnvjpeg (GPU JPEG decoding) is looked for first"},
    {Knob::kCudaAttention, "VITMSN_CUDA_ATTENTION", Kind::kChoice, "auto|simt|tile|head", 0, 0, "auto", "load",
     "simt forces the CUDA-core attention kernel; tile the 16-row tensor-core kernel; head the whole-head one "
     "(where Dh <= 64 and T <= 256); auto picks by shape"},
    {Knob::kCudaAttentionWarps, "VITMSN_CUDA_ATTENTION_WARPS", Kind::kInteger, "0 to 32 (0: automatic)", 0, 32, "0",
     "load", "warps per block of the tensor-core attention kernel (for measuring)"},
    {Knob::kCudaGelu, "VITMSN_CUDA_GELU", Kind::kChoice, "auto|exact|epilogue", 0, 0, "auto", "load",
     "where fc1's GELU runs: in the GEMM epilogue (16-bit default) or as an exact separate kernel"},
    {Knob::kCudaGraphs, "VITMSN_CUDA_GRAPHS", Kind::kChoice, "0|1", 0, 0, "1", "load",
     "0 turns CUDA graph capture of small batches off"},
    {Knob::kCudaPinnedStaging, "VITMSN_CUDA_PINNED_STAGING", Kind::kChoice, "0|1", 0, 0, "1", "load",
     "0 copies big inputs and outputs straight from pageable memory instead of through pinned slots"},
    {Knob::kCudaPipeline, "VITMSN_CUDA_PIPELINE", Kind::kChoice, "0|1", 0, 0, "1", "load",
     "0 runs forwards of 128+ images whole instead of in parts whose transfers overlap the compute"},
    {Knob::kCudaGemmTune, "VITMSN_CUDA_GEMM_TUNE", Kind::kChoice, "0|1", 0, 0, "1", "load",
     "0 keeps cuBLASLt's first algorithm (no timing at the first call of a shape)"},
    {Knob::kCudaVerbose, "VITMSN_CUDA_VERBOSE", Kind::kChoice, "0|1", 0, 0, "0", "load",
     "1 prints graph-cache and algorithm choices to stderr"},
    {Knob::kCudaProfile, "VITMSN_CUDA_PROFILE", Kind::kChoice, "0|1", 0, 0, "0", "load",
     "1 times every CUDA op with events (graphs off) and prints the totals when the backend is freed"},
    {Knob::kCudaProfileOut, "VITMSN_CUDA_PROFILE_OUT", Kind::kPath, "a file", 0, 0, "none", "load",
     "with VITMSN_CUDA_PROFILE=1, also writes the totals as JSON to this file"},
};
static_assert(sizeof(kTable) / sizeof(kTable[0]) == kKnobCount, "one row per knob");

[[noreturn]] void refuse(const Spec& s, const std::string& v) {
  std::ostringstream m;
  m << s.name << "='" << v << "' is not " << (s.kind == Kind::kChoice ? "one of " : "") << s.values;
  throw Error(codes::kDeviceUnavailable, m.str());
}

bool is_choice(const Spec& s, const std::string& v) {
  std::istringstream in(s.values);
  for (std::string c; std::getline(in, c, '|');)
    if (c == v) return true;
  return false;
}

}  // namespace

const Spec* table() { return kTable; }

const Spec& spec(Knob k) {
  const Spec& s = kTable[static_cast<size_t>(k)];
  internal_check(s.knob == k, "knob table order");
  return s;
}

std::string text(Knob k) {
  const Spec& s = spec(k);
  const char* raw = std::getenv(s.name);
  const std::string v = raw ? raw : "";
  if (v.empty()) return v;
  if (s.kind == Kind::kChoice && !is_choice(s, v)) refuse(s, v);
  if (s.kind == Kind::kInteger) {
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (errno != 0 || end == v.c_str() || *end != '\0' || n < s.min || n > s.max) refuse(s, v);
  }
  return v;
}

std::string choice(Knob k) {
  internal_check(spec(k).kind == Kind::kChoice, "knob kind");
  const std::string v = text(k);
  return v.empty() ? spec(k).fallback : v;
}

bool flag(Knob k) { return choice(k) == "1"; }

long integer(Knob k) {
  internal_check(spec(k).kind == Kind::kInteger, "knob kind");
  const std::string v = text(k);
  return std::strtol(v.empty() ? spec(k).fallback : v.c_str(), nullptr, 10);
}

}  // namespace knobs
}  // namespace vitmsn
