// The machine's float32 FMA peak as a program can reach it: each thread runs independent AVX-512
// (or AVX2) FMA chains, enough of them to cover the FMA latency, on registers only. Prints GFLOP/s
// for 1 thread and for N threads — the ceiling the CPU GEMM's speed is measured against
// (information only, not a test). Usage: bench_fma_peak [threads=2] [seconds=1]
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx512f,fma,avx2")
#elif defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,fma,avx2"))), apply_to = function)
#endif
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "cpu/cpu_features.h"

namespace {

// 16 chains × 16 lanes × 2 flops per iteration.
double run_avx512(long iters) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);  // keeps the loop alive
}

double run_avx2(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  float out[8];
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  _mm256_storeu_ps(out, s);
  return out[0];
}

double gflops(int threads, double seconds, bool avx512) {
  const double flops_per_iter = avx512 ? 16 * 16 * 2 : 12 * 8 * 2;
  long iters = 1 << 20;
  for (;;) {  // grow until one run lasts long enough to time
    std::vector<std::thread> pool;
    std::atomic<double> sink{0};
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        const double r = avx512 ? run_avx512(iters) : run_avx2(iters);
        double cur = sink.load();
        while (!sink.compare_exchange_weak(cur, cur + r)) {
        }
      });
    for (auto& th : pool) th.join();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt >= seconds) return threads * iters * flops_per_iter / dt * 1e-9 + 0 * sink.load();
    iters *= 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;
  const bool avx512 = vitmsn::cpu::cpu_features().avx512;
  const char* isa = avx512 ? "avx512" : "avx2";
  for (int rep = 0; rep < 3; ++rep) {
    std::printf("%s fp32 FMA peak: 1 thread %.1f GFLOP/s, %d threads %.1f GFLOP/s\n", isa, gflops(1, seconds, avx512),
                threads, gflops(threads, seconds, avx512));
  }
  return 0;
}
