// Times the CPU GEMM alone at the Linear shapes of ViT-S/16 and ViT-B/16 (batch 1 and 8: M = 197·B
// token rows), with float32 or bfloat16 weights, and reports GFLOP/s — to tell the GEMM's own
// efficiency apart from the rest of a forward (compare with bench_fma_peak). Information only; not a
// test. The path is the one VITMSN_CPU_ISA / VITMSN_CPU_AMX select, as in a forward.
// usage: bench_gemm [reps=20] [threads=2] [cold=0] [weights=float32|bfloat16|int8]
// cold = 1 streams 512 MB through the caches before every timed call, so the weights come from
// memory as they do in a forward pass (where ~86–330 MB of weights go by between two uses).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/packed_linear.h"
#include "cpu/thread_pool.h"

using namespace vitmsn;

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  const bool cold = argc > 3 && std::atoi(argv[3]) != 0;
  const std::string wname = argc > 4 ? argv[4] : "float32";
  const bool bf16 = wname == "bfloat16";
  const WeightDtype dtype = bf16              ? WeightDtype::kBFloat16
                            : wname == "int8" ? WeightDtype::kInt8
                                              : WeightDtype::kFloat32;
  std::vector<float> flush(cold ? size_t(128) << 20 : 0);
  float flush_sum = 0;
  cpu::ThreadPool pool(threads);
  struct Shape {
    const char* what;
    int64_t N, K;
    bool gelu, residual;
  } shapes[] = {{"S qkv", 1152, 384, false, false}, {"S out", 384, 384, false, true},
                {"S fc1", 1536, 384, true, false},  {"S fc2", 384, 1536, false, true},
                {"B qkv", 2304, 768, false, false}, {"B out", 768, 768, false, true},
                {"B fc1", 3072, 768, true, false},  {"B fc2", 768, 3072, false, true}};
  std::printf("GEMM, %s weights, %s, %d thread(s), median of %d calls%s: ms, GFLOP/s\n", wname.c_str(),
              cpu::isa_summary(cpu::default_isa()).c_str(), pool.size(), reps,
              cold ? ", caches flushed before each" : "");
  for (int64_t batch : {1, 8}) {
    const int64_t M = 197 * batch;
    for (const Shape& s : shapes) {
      std::vector<float> A(static_cast<size_t>(M * s.K)), W(static_cast<size_t>(s.N * s.K)), bias(s.N);
      std::vector<float> C(static_cast<size_t>(M * s.N), 0.5f);
      for (size_t i = 0; i < A.size(); ++i) A[i] = std::sin(0.37f * static_cast<float>(i));
      for (size_t i = 0; i < W.size(); ++i) W[i] = 0.05f * std::cos(0.11f * static_cast<float>(i));
      for (int64_t i = 0; i < s.N; ++i) bias[i] = 0.01f * static_cast<float>(i % 7);
      auto packed = cpu::PackedLinear::pack(W.data(), s.N, s.K, dtype, &pool);
      cpu::GemmArgs g;
      g.A = A.data(), g.lda = s.K, g.Wp = packed.get(), g.bias = bias.data(), g.C = C.data();
      g.residual = s.residual ? C.data() : nullptr;
      g.M = M, g.N = s.N, g.K = s.K, g.epilogue = s.gelu ? Epilogue::kGelu : Epilogue::kNone;
      for (int i = 0; i < 3; ++i) cpu::gemm(g, pool);
      std::vector<double> ts;
      for (int i = 0; i < reps; ++i) {
        if (cold) {  // weights from memory; A and C warm again, as in a forward (just written by the op before)
          for (size_t j = 0; j < flush.size(); j += 16) flush_sum += flush[j];
          for (size_t j = 0; j < A.size(); j += 16) flush_sum += A[j];
          for (size_t j = 0; j < C.size(); j += 16) flush_sum += C[j];
          flush_sum += flush[i];
        }
        const auto t0 = std::chrono::steady_clock::now();
        cpu::gemm(g, pool);
        ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3);
      }
      std::sort(ts.begin(), ts.end());
      const double ms = ts[ts.size() / 2];
      std::printf("b%-2lld %-6s M=%-5lld N=%-5lld K=%-5lld %8.3f ms %7.1f GFLOP/s\n", static_cast<long long>(batch),
                  s.what, static_cast<long long>(M), static_cast<long long>(s.N), static_cast<long long>(s.K), ms,
                  2.0 * M * s.N * s.K / ms * 1e-6);
    }
  }
  if (cold) std::printf("(flush checksum %g)\n", flush_sum);
  return 0;
}
