// The int8 GEMM (native/cpu/gemm_int8.h) on every path this CPU can run (scalar, AVX512-VNNI, AMX)
// against the scalar reference ref_gemm_int8 (native/cpu/reference.h), on awkward shapes: M = 1,
// 3, 17, 197, 1576; N and K not multiples of 16 / 64; lda > K with NaN padding; a zero row, a
// one-signed row. The integer sums must match the reference bit for bit; the float results
// (dequantisation, bias, GELU, residual in float32, vector erf on the AVX-512 paths) within
// kTolEpilogue relative L2 of the reference's double epilogue. Prints which paths ran ("PATH …")
// and ends with "N passed, M failed" (harness.h).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/gemm_int8.h"
#include "cpu/packed_linear.h"
#include "cpu/reference.h"
#include "cpu/thread_pool.h"
#include "tests/harness.h"

using namespace vitmsn;
using cpu::ThreadPool;

namespace {

// float32 epilogue vs the reference's double one: int32 → float (exact below 2²⁴, else one
// rounding), the scale product and the bias add each round once (~6e-8 each), and the vector erf
// is within 4.2e-7 absolute. Measured 4–8e-8 on every path and case; 1e-6 leaves a margin of ten.
constexpr double kTolEpilogue = 1e-6;

struct Case {
  int64_t M, K, N, lda_pad;
  bool bias, gelu;
  int residual;  // 0 none, 1 separate, 2 aliasing C
};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

void run(ThreadPool& pool, cpu::Int8Path path, const Case& c, uint64_t seed) {
  const int64_t lda = c.K + c.lda_pad;
  const std::string name = std::string("int8[") + cpu::int8_path_name(path) + "] M=" + std::to_string(c.M) +
                           " K=" + std::to_string(c.K) + " N=" + std::to_string(c.N) + " lda=" + std::to_string(lda) +
                           (c.bias ? " bias" : "") + (c.gelu ? " gelu" : "") +
                           (c.residual == 1   ? " residual"
                            : c.residual == 2 ? " residual=C"
                                              : "") +
                           " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    std::vector<float> A(static_cast<size_t>((c.M - 1) * lda + c.K));
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t k = 0; k < lda && m * lda + k < static_cast<int64_t>(A.size()); ++k) {
        float v = k < c.K ? rng.uniform(-3.0f, 3.0f) : std::numeric_limits<float>::quiet_NaN();
        if (k < c.K && m % 7 == 2) v = 0.0f;              // a zero row: scale 1, zero point 0
        if (k < c.K && m % 7 == 4) v = std::fabs(v) + 1;  // one-signed row: zero point 0, range [0, max]
        if (k < c.K && m % 7 == 5) v = -std::fabs(v);     // all negative: zero point 255
        A[m * lda + k] = v;
      }
    std::vector<float> W = rng.vec(static_cast<size_t>(c.N * c.K), -0.1f, 0.1f);
    for (int64_t k = 0; k < c.K; ++k) W[k] *= 10.0f;  // one column with another scale
    if (c.N > 2)
      for (int64_t k = 0; k < c.K; ++k) W[2 * c.K + k] = 0.0f;  // an all-zero column
    std::vector<float> bias = rng.vec(static_cast<size_t>(c.N));
    std::vector<float> res = rng.vec(static_cast<size_t>(c.M * c.N), -2.0f, 2.0f);
    const size_t mn = static_cast<size_t>(c.M * c.N);
    auto packed = cpu::PackedLinear::pack(W.data(), c.N, c.K, WeightDtype::kInt8, &pool);

    // Integer part: exact.
    std::vector<int32_t> acc(mn, -1), acc_ref(mn, -2);
    cpu::gemm_int8_acc(A.data(), lda, c.M, *packed, acc.data(), pool, path);
    cpu::GemmArgs r;
    r.A = A.data(), r.lda = lda, r.W = W.data(), r.M = c.M, r.N = c.N, r.K = c.K;
    r.bias = c.bias ? bias.data() : nullptr, r.epilogue = c.gelu ? Epilogue::kGelu : Epilogue::kNone;
    std::vector<float> want(mn), got(mn + 16, 12345.0f);
    if (c.residual == 2) std::copy(res.begin(), res.end(), want.begin());
    if (c.residual == 1) r.residual = res.data();
    if (c.residual == 2) r.residual = want.data();
    r.C = want.data();
    cpu::ref_gemm_int8(r, acc_ref.data());
    size_t diff = 0;
    for (size_t i = 0; i < mn; ++i) diff += acc[i] != acc_ref[i];
    check(diff == 0, name + " int32 sums", std::to_string(diff) + " of " + std::to_string(mn) + " differ");

    // Whole GEMM, through gemm_int8 and (same path where it is the default) cpu::gemm's dispatch.
    cpu::GemmArgs g = r;
    g.W = nullptr, g.Wp = packed.get(), g.C = got.data();
    if (c.residual == 2) std::copy(res.begin(), res.end(), got.begin()), g.residual = got.data();
    cpu::gemm_int8(g, pool, path);
    std::vector<float> got_n(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(mn));
    const double err = rel_l2(got_n.data(), want.data(), mn);
    bool guard = true;
    for (size_t i = mn; i < got.size(); ++i) guard = guard && got[i] == 12345.0f;
    check(err <= kTolEpilogue && guard, name,
          "rel_l2 " + fmt(err) + " (tol " + fmt(kTolEpilogue) + ")" + (guard ? "" : ", wrote past C"));
  });
}

}  // namespace

int main() {
  try {
    ThreadPool pool1(1), pool2(2), pool3(3);
    const Case cases[] = {
        {1, 384, 1152, 0, true, false, 0},    // batch-1 row, ViT-S qkv
        {3, 65, 37, 3, true, true, 1},        // odd everything, lda > K
        {17, 100, 250, 0, true, true, 2},     // fc1-like with residual in place
        {197, 384, 1536, 0, true, true, 0},   // ViT-S fc1 + GELU
        {197, 1536, 384, 0, true, false, 2},  // ViT-S fc2 + residual in place
        {197, 768, 2304, 0, true, false, 0},  // ViT-B qkv
        {1576, 384, 384, 0, true, false, 2},  // batch 8, attention output
        {5, 1, 37, 0, true, true, 0},         // K = 1
        {37, 29, 1, 0, false, false, 1},      // N = 1
        {1, 3072, 77, 5, true, false, 1},     // long K
        {197, 3072, 96, 0, true, false, 2},   // ViT-B fc2 rows, residual in place
        {40, 1100, 70, 2, true, true, 1},     // K past a multiple of 64, a short row tile
        {33, 64, 40, 0, false, true, 0},      // one K block, 2 row tiles, N tail
    };
    for (cpu::Int8Path path : {cpu::Int8Path::kScalar, cpu::Int8Path::kVnni, cpu::Int8Path::kAmx}) {
      if (!cpu::int8_path_supported(path)) {
        std::printf("SKIP  int8[%s]: this CPU (or compiler) lacks it\n", cpu::int8_path_name(path));
        continue;
      }
      std::printf("PATH  int8[%s]\n", cpu::int8_path_name(path));
      uint64_t seed = 1000;
      for (const Case& c : cases) run(pool2, path, c, seed++);
      run(pool1, path, {197, 384, 1152, 0, true, true, 2}, seed++);
      run(pool3, path, {200, 130, 70, 2, true, false, 1}, seed++);
    }
    // cpu::gemm sends an int8 weight to the int8 path its ISA picks.
    run_case("gemm dispatch int8", [&] {
      Rng rng(7);
      const int64_t M = 19, K = 70, N = 45;
      std::vector<float> A = rng.vec(static_cast<size_t>(M * K)), W = rng.vec(static_cast<size_t>(N * K));
      auto p = cpu::PackedLinear::pack(W.data(), N, K, WeightDtype::kInt8);
      std::vector<float> got(static_cast<size_t>(M * N)), want(got.size());
      cpu::GemmArgs g;
      g.A = A.data(), g.lda = K, g.Wp = p.get(), g.C = got.data(), g.M = M, g.N = N, g.K = K;
      cpu::gemm(g, pool2);
      g.Wp = nullptr, g.W = W.data(), g.C = want.data();
      cpu::ref_gemm_int8(g);
      const double err = rel_l2(got.data(), want.data(), got.size());
      check(err <= kTolEpilogue,
            std::string("gemm dispatch int8 -> ") + cpu::int8_path_name(cpu::int8_path_for(cpu::default_isa())),
            "rel_l2 " + fmt(err));
    });
  } catch (const std::exception& e) {
    check(false, "test program", std::string("uncaught exception: ") + e.what());
  }
  return finish();
}
