// CPU kernels against their scalar references (native/cpu/reference.h), on the awkward shapes the
// engine meets (197 tokens, batch 3, odd widths, K = 1, N = 1, T = 1, odd head dims), plus the
// thread pool and the backend's memory entry points. Ends with "N passed, M failed" (harness.h;
// VITMSN_TEST_VERBOSE=1 prints every case with its error); exits nonzero on failure. GEMM timings
// are in bench_gemm.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/factories.h"
#include "common/error.h"
#include "cpu/attention.h"
#include "cpu/attention_amx.h"
#include "cpu/cpu_features.h"
#include "cpu/embed_tokens.h"
#include "cpu/gemm.h"
#include "cpu/layernorm.h"
#include "cpu/mlp.h"
#include "cpu/packed_linear.h"
#include "cpu/patchify.h"
#include "cpu/qkv_attention.h"
#include "cpu/reference.h"
#include "cpu/thread_pool.h"
#include "tests/harness.h"

using namespace vitmsn;
using cpu::ThreadPool;

namespace {

// ---- helpers ------------------------------------------------------------------------------------

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

void check_close(const std::string& name, const std::vector<float>& got, const std::vector<float>& want, double tol) {
  if (got.size() != want.size()) {
    check(false, name, "size mismatch");
    return;
  }
  const double err = rel_l2(got.data(), want.data(), got.size());
  check(err <= tol, name, "rel_l2 " + fmt(err) + " (tol " + fmt(tol) + ")");
}

void check_exact(const std::string& name, const std::vector<float>& got, const std::vector<float>& want) {
  const bool ok = got.size() == want.size() &&
                  (got.empty() || std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  check(ok, name, ok ? "bit-exact" : "differs");
}

// A sentinel written past the end of every output: a kernel writing out of bounds changes it.
constexpr float kGuard = 12345.678f;
constexpr size_t kGuardLen = 16;
bool guard_intact(const std::vector<float>& v, size_t n) {
  for (size_t i = n; i < v.size(); ++i)
    if (v[i] != kGuard) return false;
  return true;
}

// got holds n outputs and then guards: the guards must be intact, and got[:n] close to want[:n]
// (tol kExact: equal to the bit).
constexpr double kExact = 0;
void check_guarded(const std::string& name, std::vector<float>& got, std::vector<float>& want, size_t n, double tol) {
  const bool guards = guard_intact(got, n);
  got.resize(n), want.resize(n);
  if (!guards) {
    check(false, name, "wrote past the end of the output");
    return;
  }
  if (tol == kExact) {
    check_exact(name, got, want);
  } else {
    check_close(name, got, want, tol);
  }
}

// ---- tolerances (relative L2 against the double-accumulating reference) ---------------------------

// float32 accumulation over K ≤ 1536 terms: expected error ≈ √K·2⁻²⁴ ≈ 2e-6; 1e-5 leaves margin.
constexpr double kTolGemm = 1e-5;
// Statistics and centring in double; only the float γ/β step and the output rounding remain.
constexpr double kTolLayerNorm = 1e-6;
// float32 scores, exp and sums over T ≤ 1025 keys, against double: a few ulp per stage.
constexpr double kTolAttention = 1e-5;
// The AMX bf16 attention against its scalar reference (the same bf16 roundings, float32 sums):
// what remains is exp (exp_ps vs std::exp, ~1 ulp), the order of the softmax sum, and scores that
// TDPBF16PS rounds differently from the reference's sequential float sum in the last bit — enough,
// now and then, to send one p to the neighbouring bf16 value (2⁻⁸ of that weight). Measured
// 2e-7 – 5e-6 on most cases below, 2.2e-5 on the ViT-B shape (one such flip of a large p in a row
// with cancellation); 5e-5 leaves margin, and a wrong mask, layout or scale errs by ≥ 1e-3.
constexpr double kTolAttentionBf16Ref = 5e-5;
// bf16 attention (q, k, v and p with 8 significant bits) against float32 attention (the double
// reference): measured 1.6e-3 – 5.2e-3 with scores spread ±3; 1e-2 is bf16's budget. Scores spread
// over hundreds (spread 12) move by ~|s|·2⁻⁹ when q and k round, which shifts near one-hot rows:
// measured 1.1e-2 there (the bf16 reference errs alike), bound 3e-2.
constexpr double kTolAttentionBf16 = 1e-2;
constexpr double kTolAttentionBf16Wide = 3e-2;
// patchify and embed_tokens are copies and one float add, which the reference reproduces exactly
// (a double sum of two floats rounds to the same float), so they are compared bit for bit.

// ---- gemm -----------------------------------------------------------------------------------------

enum class Residual { kNone, kSeparate, kAlias };

struct GemmCase {
  int64_t M, K, N, lda_pad;
  bool bias;
  Epilogue ep;
  Residual res;
};

// Which kernel path, weight dtype and weight form (prepared once vs packed per call) a case runs.
struct GemmPath {
  cpu::Isa isa = cpu::Isa::kScalar;
  WeightDtype dtype = WeightDtype::kFloat32;
  bool prepared = false;
};
GemmPath g_path;  // set by test_gemm_suite for each path

void test_gemm(ThreadPool& pool, const GemmCase& c, uint64_t seed) {
  const int64_t lda = c.K + c.lda_pad;
  const GemmPath path = g_path;
  const bool bf16 = path.dtype == WeightDtype::kBFloat16;
  std::string name = std::string("gemm[") + cpu::isa_name(path.isa) + (bf16 ? ",bf16" : ",fp32") +
                     (path.prepared ? ",prepared" : "") + "] M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) +
                     " N=" + std::to_string(c.N) + " lda=" + std::to_string(lda) + (c.bias ? " bias" : "") +
                     (c.ep == Epilogue::kGelu ? " gelu" : "") +
                     (c.res == Residual::kSeparate ? " residual"
                      : c.res == Residual::kAlias  ? " residual=C"
                                                   : "") +
                     " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    // A's padding columns are NaN: reading them would poison the result.
    std::vector<float> A(static_cast<size_t>(c.M > 0 ? (c.M - 1) * lda + c.K : 0));
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t k = 0; k < lda && m * lda + k < static_cast<int64_t>(A.size()); ++k)
        A[m * lda + k] = k < c.K ? rng.uniform() : std::numeric_limits<float>::quiet_NaN();
    std::vector<float> W = rng.vec(static_cast<size_t>(c.N * c.K), -0.1f, 0.1f);
    std::vector<float> bias = rng.vec(static_cast<size_t>(c.N));
    std::vector<float> res = rng.vec(static_cast<size_t>(c.M * c.N), -2.0f, 2.0f);
    const size_t mn = static_cast<size_t>(c.M * c.N);

    std::vector<float> got(mn + kGuardLen, kGuard), want(mn + kGuardLen, kGuard), sep_res;
    cpu::GemmArgs g;
    g.A = A.data(), g.lda = lda, g.W = W.data(), g.bias = c.bias ? bias.data() : nullptr;
    g.M = c.M, g.N = c.N, g.K = c.K, g.epilogue = c.ep;
    if (c.res == Residual::kAlias) {
      std::copy(res.begin(), res.end(), got.begin());
      std::copy(res.begin(), res.end(), want.begin());
    }
    cpu::GemmArgs gk = g, gr = g;
    gk.C = got.data(), gr.C = want.data();
    if (c.res == Residual::kSeparate) gk.residual = gr.residual = res.data();
    if (c.res == Residual::kAlias) gk.residual = got.data(), gr.residual = want.data();
    std::unique_ptr<cpu::PackedLinear> packed;
    if (path.prepared) {
      packed = cpu::PackedLinear::pack(W.data(), c.N, c.K, path.dtype);
      gk.Wp = packed.get();
      gk.W = nullptr;
    }
    // bf16: every path rounds A and W to bf16 and sums exact products in fp32, so the reference
    // gets the rounded operands and the fp32 tolerance still applies.
    std::vector<float> Ar, Wr;
    if (bf16) {
      Ar = A, Wr = W;
      for (float& v : Ar) v = std::isnan(v) ? v : cpu::from_bf16(cpu::to_bf16(v));
      for (float& v : Wr) v = cpu::from_bf16(cpu::to_bf16(v));
      gr.A = Ar.data(), gr.W = Wr.data();
    }
    cpu::gemm(gk, pool, path.isa);
    cpu::ref_gemm(gr);
    check_guarded(name, got, want, mn, kTolGemm);
  });
}

void test_gemm_cases(ThreadPool& pool2, ThreadPool& pool3, ThreadPool& pool1) {
  const Epilogue G = Epilogue::kGelu, P = Epilogue::kNone;
  const GemmCase cases[] = {
      {197, 384, 1152, 0, true, P, Residual::kNone},         // ViT-S qkv
      {197, 384, 384, 0, true, P, Residual::kAlias},         // attention output + residual in place
      {197, 384, 1536, 0, true, G, Residual::kNone},         // fc1 + GELU
      {197, 1536, 384, 0, true, P, Residual::kAlias},        // fc2 + residual in place
      {3 * 197, 384, 384, 0, true, P, Residual::kSeparate},  // batch 3
      {3 * 197, 37, 65, 0, true, G, Residual::kAlias},
      {29, 65, 37, 3, false, G, Residual::kSeparate},  // lda > K, odd everything
      {7, 29, 29, 100, true, P, Residual::kNone},
      {5, 1, 37, 0, true, G, Residual::kNone},    // K = 1
      {37, 29, 1, 0, true, P, Residual::kAlias},  // N = 1
      {1, 1, 1, 0, false, P, Residual::kNone},
      {1, 384, 1000, 0, true, P, Residual::kNone},          // classifier, one image
      {3, 384, 1000, 196 * 384, true, P, Residual::kNone},  // classifier on CLS rows: lda = T·D
      {13, 8, 9, 0, true, G, Residual::kSeparate},
      {6, 64, 8, 0, false, P, Residual::kNone},      // exactly one register tile
      {197, 768, 384, 0, true, P, Residual::kNone},  // patch embedding, p = 16
  };
  uint64_t seed = 100;
  for (const GemmCase& c : cases) test_gemm(pool2, c, seed++);
  test_gemm(pool3, {197, 384, 1152, 0, true, G, Residual::kAlias}, seed++);
  test_gemm(pool1, {197, 384, 384, 5, true, G, Residual::kAlias}, seed++);
  test_gemm(pool3, {2, 40, 700, 0, true, P, Residual::kSeparate}, seed++);    // M tiny, many columns
  test_gemm(pool2, {15, 33, 64, 0, true, G, Residual::kAlias}, seed++);       // odd K (bf16 pair tail)
  test_gemm(pool2, {29, 3072, 70, 1, true, P, Residual::kSeparate}, seed++);  // long K
  test_gemm(pool2, {33, 64, 40, 0, true, G, Residual::kAlias}, seed++);       // AMX: 2 row tiles, N tail
  test_gemm(pool3, {1576, 384, 96, 0, true, P, Residual::kNone}, seed++);     // batch 8 rows
  // N > M: panel groups (AVX-512 fp32) with a ragged last group and panel, 1 and 2 threads.
  test_gemm(pool1, {3, 100, 250, 0, true, G, Residual::kAlias}, seed++);
  test_gemm(pool2, {17, 70, 161, 2, true, P, Residual::kSeparate}, seed++);
  // N > M with a long K: K in chunks (AVX-512 fp32; ragged last chunk), residual first, bias last.
  test_gemm(pool2, {60, 4000, 200, 2, true, P, Residual::kSeparate}, seed++);
  test_gemm(pool1, {50, 5000, 77, 0, false, P, Residual::kNone}, seed++);
  test_gemm(pool3, {197, 1536, 390, 0, true, P, Residual::kAlias}, seed++);
}

// Every kernel path this CPU can run (VITMSN_CPU_ISA's choices), fp32 and bf16 weights, with the
// weight prepared at load or packed on the spot.
void test_gemm_suite(ThreadPool& pool2, ThreadPool& pool3, ThreadPool& pool1) {
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) {
      std::printf("SKIP  gemm[%s]: this CPU lacks it\n", cpu::isa_name(isa));
      continue;
    }
    g_path = {isa, WeightDtype::kFloat32, false};
    test_gemm_cases(pool2, pool3, pool1);
    g_path = {isa, WeightDtype::kFloat32, true};
    test_gemm_cases(pool2, pool3, pool1);
    g_path = {isa, WeightDtype::kBFloat16, true};
    test_gemm_cases(pool2, pool3, pool1);
    if (isa == cpu::Isa::kAvx512 && cpu::cpu_features().amx_bf16) {
      // The cases above ran AMX where K % 32 == 0; run them again on the avx512_bf16 kernel.
      std::printf("INFO  gemm[avx512,bf16] again with AMX disabled\n");
      cpu::set_amx_enabled(false);
      test_gemm_cases(pool2, pool3, pool1);
      cpu::set_amx_enabled(true);
    }
  }
  g_path = {cpu::default_isa(), WeightDtype::kFloat32, false};

  run_case("gemm K=0 gives epilogue(bias) + residual", [&] {
    std::vector<float> bias = {1.0f, -2.0f, 0.5f}, res = {1, 2, 3, 4, 5, 6}, C = res;
    cpu::GemmArgs g;
    g.lda = 0, g.bias = bias.data(), g.residual = C.data(), g.C = C.data(), g.M = 2, g.N = 3, g.K = 0;
    cpu::gemm(g, pool2);
    std::vector<float> want = {2, 0, 3.5f, 5, 3, 6.5f};
    check_exact("gemm K=0 gives epilogue(bias) + residual", C, want);
  });
  run_case("gemm M=0 is a no-op", [&] {
    cpu::GemmArgs g;
    g.M = 0, g.N = 5, g.K = 3, g.lda = 3;
    cpu::gemm(g, pool2);
    check(true, "gemm M=0 is a no-op");
  });
  run_case("gemm lda < K throws ERR_INTERNAL", [&] {
    std::vector<float> A(16), W(16), C(16);
    cpu::GemmArgs g;
    g.A = A.data(), g.W = W.data(), g.C = C.data(), g.M = 2, g.N = 2, g.K = 4, g.lda = 3;
    try {
      cpu::gemm(g, pool2);
      check(false, "gemm lda < K throws ERR_INTERNAL", "no exception");
    } catch (const Error& e) {
      check(e.code() == codes::kInternal, "gemm lda < K throws ERR_INTERNAL", e.code());
    }
  });
}

// ---- mlp ------------------------------------------------------------------------------------------

// out += W2·gelu(W1·a + b1) + b2 through cpu::mlp (fused or two GEMMs) against ref_mlp: row counts
// around the fused path's 14-row tiles and 56-row blocks, D and I off every vector width.
bool g_ln_in = false;  // the MLP / qkv_attention cases run with a LayerNorm in front (ln set)

// The unfused paths' intermediate buffers (cpu::OpBuffers), handed out full of NaN: a path that
// reads one before writing it shows in the result, and a fused path must ask for none.
struct NanBuffers final : cpu::OpBuffers {
  std::vector<std::vector<float>> held;
  float* get(size_t floats) override {
    return held.emplace_back(floats, std::numeric_limits<float>::quiet_NaN()).data();
  }
};

void test_mlp(ThreadPool& pool, cpu::Isa isa, cpu::MlpMode mode, int64_t M, int64_t D, int64_t I, bool biases,
              uint64_t seed) {
  const char* how = mode == cpu::MlpMode::kFused         ? "fused"
                    : mode == cpu::MlpMode::kFusedSlices ? "slices"
                    : mode == cpu::MlpMode::kUnfused     ? "unfused"
                                                         : "auto";
  const std::string name = std::string("mlp[") + cpu::isa_name(isa) + "," + how + "] M=" + std::to_string(M) +
                           " D=" + std::to_string(D) + " I=" + std::to_string(I) + (biases ? " biases" : "") +
                           (g_ln_in ? " layernorm" : "") + " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    std::vector<float> a = rng.vec(static_cast<size_t>(M * D)), W1 = rng.vec(static_cast<size_t>(I * D), -0.2f, 0.2f),
                       W2 = rng.vec(static_cast<size_t>(D * I), -0.2f, 0.2f), b1 = rng.vec(static_cast<size_t>(I)),
                       b2 = rng.vec(static_cast<size_t>(D)), x = rng.vec(static_cast<size_t>(M * D), -2.0f, 2.0f);
    auto P1 = cpu::PackedLinear::pack(W1.data(), I, D, WeightDtype::kFloat32);
    auto P2 = cpu::PackedLinear::pack(W2.data(), D, I, WeightDtype::kFloat32);
    const size_t md = static_cast<size_t>(M * D);
    std::vector<float> got(md + kGuardLen, kGuard), want(md + kGuardLen, kGuard);
    std::copy(x.begin(), x.end(), got.begin());
    std::copy(x.begin(), x.end(), want.begin());
    cpu::MlpArgs m;
    m.a = a.data(), m.W1 = P1.get(), m.W2 = P2.get(), m.b1 = biases ? b1.data() : nullptr;
    m.b2 = biases ? b2.data() : nullptr, m.M = M, m.D = D, m.I = I;
    cpu::MlpArgs mk = m, mr = m;
    mk.out = got.data(), mr.out = want.data();
    // LayerNorm in front: the kernel gets x (= out: the residual stream, read before it is
    // updated) and the LN parameters; the reference normalises first.
    std::vector<float> gamma = rng.vec(static_cast<size_t>(D), 0.5f, 1.5f), beta = rng.vec(static_cast<size_t>(D));
    std::vector<float> ln_ref(static_cast<size_t>(M * D));
    if (g_ln_in) {
      mk.a = got.data(), mk.ln = {gamma.data(), beta.data(), 1e-6f};
      cpu::ref_layernorm({want.data(), gamma.data(), beta.data(), ln_ref.data(), M, D, 1e-6f});
      mr.a = ln_ref.data();
    }
    NanBuffers buffers;
    cpu::mlp(mk, pool, isa, mode, &buffers);
    if (mode == cpu::MlpMode::kFused || mode == cpu::MlpMode::kFusedSlices) {
      check(buffers.held.empty(), name + ": the fused op asks for no buffers");
    }
    cpu::ref_mlp(mr, W1.data(), W2.data());
    check_guarded(name, got, want, md, kTolGemm);
  });
}

void test_mlp_suite(ThreadPool& pool2, ThreadPool& pool3, ThreadPool& pool1) {
  struct Shape {
    int64_t M, D, I;
  } shapes[] = {{1, 8, 16},    {13, 20, 50},   {14, 16, 32},  {56, 32, 64}, {57, 33, 70},
                {113, 64, 96}, {197, 40, 130}, {250, 17, 33}, {30, 5, 1},   {448, 48, 200}};
  uint64_t seed = 2000;
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) continue;
    for (const Shape& s : shapes) test_mlp(pool2, isa, cpu::MlpMode::kUnfused, s.M, s.D, s.I, true, seed++);
    if (isa != cpu::Isa::kAvx512) continue;
    for (const Shape& s : shapes) test_mlp(pool2, isa, cpu::MlpMode::kFused, s.M, s.D, s.I, true, seed++);
    for (const Shape& s : shapes) test_mlp(pool2, isa, cpu::MlpMode::kFusedSlices, s.M, s.D, s.I, true, seed++);
    test_mlp(pool1, isa, cpu::MlpMode::kFusedSlices, 197, 40, 130, false, seed++);
    test_mlp(pool3, isa, cpu::MlpMode::kFusedSlices, 197, 96, 3072, true, seed++);  // long slices, 6 partials
    test_mlp(pool1, isa, cpu::MlpMode::kFused, 197, 40, 130, false, seed++);
    test_mlp(pool3, isa, cpu::MlpMode::kFused, 1576 / 4, 96, 384, true, seed++);
    test_mlp(pool2, isa, cpu::MlpMode::kAuto, 1576, 64, 256, true, seed++);  // batch 8 rows: fused
    test_mlp(pool2, isa, cpu::MlpMode::kAuto, 197, 64, 1024, true, seed++);  // batch 1 rows: hidden slices
    test_mlp(pool2, isa, cpu::MlpMode::kAuto, 197, 64, 256, true, seed++);   // slices too thin: two GEMMs
  }
  // LayerNorm in front, every way the op can run.
  g_ln_in = true;
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) continue;
    test_mlp(pool2, isa, cpu::MlpMode::kUnfused, 57, 33, 70, true, seed++);
    if (isa != cpu::Isa::kAvx512) continue;
    test_mlp(pool2, isa, cpu::MlpMode::kFused, 113, 40, 96, true, seed++);
    test_mlp(pool3, isa, cpu::MlpMode::kFused, 1576 / 4, 64, 128, true, seed++);
    test_mlp(pool2, isa, cpu::MlpMode::kFusedSlices, 197, 40, 130, true, seed++);
    test_mlp(pool1, isa, cpu::MlpMode::kFusedSlices, 29, 17, 64, false, seed++);
  }
  g_ln_in = false;
  if (cpu::isa_supported(cpu::Isa::kAvx512)) {
    run_case("mlp fused with bf16 weights throws ERR_INTERNAL", [&] {
      std::vector<float> W(64 * 32, 0.1f), a(14 * 32), x(14 * 32);
      auto P1 = cpu::PackedLinear::pack(W.data(), 64, 32, WeightDtype::kBFloat16);
      auto P2 = cpu::PackedLinear::pack(W.data(), 32, 64, WeightDtype::kBFloat16);
      cpu::MlpArgs m;
      m.a = a.data(), m.W1 = P1.get(), m.W2 = P2.get(), m.out = x.data(), m.M = 14, m.D = 32, m.I = 64;
      try {
        cpu::mlp(m, pool2, cpu::Isa::kAvx512, cpu::MlpMode::kFused);
        check(false, "mlp fused with bf16 weights throws ERR_INTERNAL", "no exception");
      } catch (const Error& e) {
        check(e.code() == codes::kInternal, "mlp fused with bf16 weights throws ERR_INTERNAL", e.code());
      }
    });
  }
}

// ---- qkv + attention ------------------------------------------------------------------------------

// qkv = a·Wᵀ + b, then attention, through cpu::qkv_attention (fused or not) against ref_gemm +
// ref_attention: token counts around the 14-row tiles, 32-key blocks and 40-row query blocks.
void test_qkv_attention(ThreadPool& pool, cpu::Isa isa, cpu::QkvAttentionMode mode, int64_t B, int64_t T, int64_t H,
                        int64_t Dh, int64_t D, bool bias, bool head_scale, uint64_t seed) {
  const char* how = mode == cpu::QkvAttentionMode::kFused     ? "fused"
                    : mode == cpu::QkvAttentionMode::kUnfused ? "unfused"
                                                              : "auto";
  const std::string name = std::string("qkv_attention[") + cpu::isa_name(isa) + "," + how + "] B=" + std::to_string(B) +
                           " T=" + std::to_string(T) + " H=" + std::to_string(H) + " Dh=" + std::to_string(Dh) +
                           " D=" + std::to_string(D) + (bias ? " bias" : "") + (head_scale ? " head_scale" : "") +
                           (g_ln_in ? " layernorm" : "") + " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    const int64_t M = B * T, N = 3 * H * Dh, HD = H * Dh;
    std::vector<float> a = rng.vec(static_cast<size_t>(M * D)), W = rng.vec(static_cast<size_t>(N * D), -0.3f, 0.3f),
                       b = rng.vec(static_cast<size_t>(N)), hs = rng.vec(static_cast<size_t>(H), 0.0f, 2.0f);
    auto P = cpu::PackedLinear::pack(W.data(), N, D, WeightDtype::kFloat32);
    const size_t mo = static_cast<size_t>(M * HD);
    std::vector<float> got(mo + kGuardLen, kGuard), want(mo + kGuardLen, kGuard);
    std::vector<float> qkv_ref(static_cast<size_t>(M * N));
    cpu::QkvAttentionArgs q;
    q.a = a.data(), q.W = P.get(), q.bias = bias ? b.data() : nullptr, q.out = got.data();
    q.head_scale = head_scale ? hs.data() : nullptr, q.B = B, q.T = T, q.H = H, q.Dh = Dh, q.D = D;
    q.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    std::vector<float> gamma = rng.vec(static_cast<size_t>(D), 0.5f, 1.5f), beta = rng.vec(static_cast<size_t>(D));
    std::vector<float> ln_ref(static_cast<size_t>(M * D));
    const float* a_ref = a.data();
    if (g_ln_in) {
      q.ln = {gamma.data(), beta.data(), 1e-6f};
      cpu::ref_layernorm({a.data(), gamma.data(), beta.data(), ln_ref.data(), M, D, 1e-6f});
      a_ref = ln_ref.data();
    }
    NanBuffers buffers;
    cpu::qkv_attention(q, pool, isa, mode, &buffers);
    if (mode == cpu::QkvAttentionMode::kFused) check(buffers.held.empty(), name + ": the fused op asks for no buffers");
    cpu::GemmArgs g;
    g.A = a_ref, g.lda = D, g.W = W.data(), g.bias = q.bias, g.C = qkv_ref.data(), g.M = M, g.N = N, g.K = D;
    cpu::ref_gemm(g);
    cpu::AttentionArgs at;
    at.qkv = qkv_ref.data(), at.out = want.data(), at.head_scale = q.head_scale, at.B = B, at.T = T, at.H = H,
    at.Dh = Dh;
    at.scale = q.scale;
    cpu::ref_attention(at);
    check_guarded(name, got, want, mo, kTolAttention);
  });
}

void test_qkv_attention_suite(ThreadPool& pool2, ThreadPool& pool3, ThreadPool& pool1) {
  using Mode = cpu::QkvAttentionMode;
  uint64_t seed = 3000;
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) continue;
    test_qkv_attention(pool2, isa, Mode::kUnfused, 2, 197, 3, 32, 48, true, false, seed++);
    if (isa != cpu::Isa::kAvx512) continue;
    struct Shape {
      int64_t B, T, H, Dh, D;
    } shapes[] = {{1, 1, 1, 32, 16},    {1, 13, 2, 32, 40},  {1, 14, 1, 64, 32}, {2, 15, 2, 32, 33},
                  {1, 32, 2, 32, 64},   {1, 33, 1, 64, 70},  {3, 45, 2, 32, 30}, {1, 197, 6, 64, 384},
                  {2, 197, 3, 64, 100}, {1, 257, 2, 96, 50}, {1, 300, 1, 32, 17}};
    for (const Shape& s : shapes)
      test_qkv_attention(pool2, isa, Mode::kFused, s.B, s.T, s.H, s.Dh, s.D, true, false, seed++);
    test_qkv_attention(pool1, isa, Mode::kFused, 1, 197, 4, 64, 64, false, true, seed++);
    test_qkv_attention(pool3, isa, Mode::kFused, 3, 50, 2, 32, 64, true, true, seed++);
    test_qkv_attention(pool2, isa, Mode::kAuto, 1, 197, 2, 48, 64, true, false, seed++);  // Dh 48: unfused
  }
  g_ln_in = true;
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) continue;
    test_qkv_attention(pool2, isa, Mode::kUnfused, 2, 45, 2, 32, 40, true, false, seed++);
    if (isa != cpu::Isa::kAvx512) continue;
    test_qkv_attention(pool2, isa, Mode::kFused, 2, 197, 3, 64, 100, true, true, seed++);
    test_qkv_attention(pool1, isa, Mode::kFused, 1, 15, 1, 32, 17, true, false, seed++);
  }
  g_ln_in = false;
}

// ---- layernorm ------------------------------------------------------------------------------------

cpu::Isa g_ln_isa = cpu::Isa::kScalar;  // set by test_layernorm_suite for each path

void test_layernorm(ThreadPool& pool, int64_t rows, int64_t D, float offset, bool alias, uint64_t seed) {
  const std::string name = std::string("layernorm[") + cpu::isa_name(g_ln_isa) + "] rows=" + std::to_string(rows) +
                           " D=" + std::to_string(D) + (offset != 0 ? " offset=" + fmt(offset) : "") +
                           (alias ? " y=x" : "") + " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    const size_t n = static_cast<size_t>(rows * D);
    std::vector<float> x = rng.vec(n, -3.0f, 3.0f);
    for (float& v : x) v += offset;  // a large common offset: the case one-pass float statistics fail
    std::vector<float> gamma = rng.vec(static_cast<size_t>(D), 0.5f, 1.5f), beta = rng.vec(static_cast<size_t>(D));
    std::vector<float> want(n);
    cpu::LayerNormArgs r{x.data(), gamma.data(), beta.data(), want.data(), rows, D, 1e-6f};
    cpu::ref_layernorm(r);
    std::vector<float> got;
    if (alias) {
      got = x;
      got.resize(n + kGuardLen, kGuard);
      cpu::layernorm({got.data(), gamma.data(), beta.data(), got.data(), rows, D, 1e-6f}, pool, g_ln_isa);
    } else {
      got.assign(n + kGuardLen, kGuard);
      cpu::layernorm({x.data(), gamma.data(), beta.data(), got.data(), rows, D, 1e-6f}, pool, g_ln_isa);
    }
    check_guarded(name, got, want, n, kTolLayerNorm);
  });
}

void test_layernorm_cases(ThreadPool& pool2, ThreadPool& pool1) {
  uint64_t seed = 200;
  test_layernorm(pool2, 197, 384, 0, false, seed++);
  test_layernorm(pool2, 3 * 197, 384, 0, true, seed++);
  test_layernorm(pool2, 197, 768, 1000.0f, true, seed++);
  test_layernorm(pool2, 65, 37, 0, false, seed++);
  test_layernorm(pool2, 3, 29, -50.0f, false, seed++);
  test_layernorm(pool1, 197, 65, 0, true, seed++);
  test_layernorm(pool2, 1, 1, 0, false, seed++);  // var = 0: y = β
  test_layernorm(pool2, 5, 7, 0, true, seed++);
}

void test_layernorm_suite(ThreadPool& pool2, ThreadPool& pool1) {
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) continue;
    g_ln_isa = isa;
    test_layernorm_cases(pool2, pool1);
  }
  g_ln_isa = cpu::default_isa();
}

// ---- attention ------------------------------------------------------------------------------------

enum class HeadScale { kNone, kRandom, kWithZeros };
// kRising scales key j by 8·(j + 1)/T, so later key blocks hold larger scores: the flash kernel's
// reference value m must then be raised (and O, l rescaled) in the middle of a row.
enum class Keys { kUniform, kRising };
cpu::Isa g_attn_isa = cpu::Isa::kScalar;                               // set by test_attention_suite
cpu::AttentionKernel g_attn_kernel = cpu::AttentionKernel::kExplicit;  // for each path and kernel

// Whether heads 0, 2, 4, … of every row of out ([rows][H·Dh]) are exactly 0 (HeadScale::kWithZeros
// scales those heads by 0).
bool even_heads_zero(const std::vector<float>& out, int64_t rows, int64_t H, int64_t Dh) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t h = 0; h < H; h += 2)
      for (int64_t d = 0; d < Dh; ++d)
        if (out[(i * H + h) * Dh + d] != 0.0f) return false;
  return true;
}

void test_attention(ThreadPool& pool, int64_t B, int64_t T, int64_t H, int64_t Dh, HeadScale hsm, bool probs,
                    uint64_t seed, Keys keys = Keys::kUniform, float spread = 3.0f) {
  const bool flash = g_attn_kernel == cpu::AttentionKernel::kFlash;
  probs = probs && !flash;  // only the explicit kernel returns probabilities
  const std::string name = std::string("attention[") + cpu::isa_name(g_attn_isa) + (flash ? " flash" : " explicit") +
                           "] B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) +
                           " Dh=" + std::to_string(Dh) +
                           (hsm == HeadScale::kRandom      ? " head_scale"
                            : hsm == HeadScale::kWithZeros ? " head_scale(0s)"
                                                           : "") +
                           (keys == Keys::kRising ? " rising keys" : "") +
                           (spread != 3.0f ? " spread=" + std::to_string(static_cast<int>(spread)) : "") +
                           (probs ? " probs" : "") + " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    const int64_t HD = H * Dh;
    // Spread ±3 so that softmax rows are neither flat nor one-hot.
    std::vector<float> qkv = rng.vec(static_cast<size_t>(B * T * 3 * HD), -spread, spread);
    if (keys == Keys::kRising) {
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < T; ++j)
          for (int64_t c = 0; c < HD; ++c) qkv[(b * T + j) * 3 * HD + HD + c] *= 8.0f * (j + 1) / T;
    }
    std::vector<float> hs(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) {
      hs[h] = hsm == HeadScale::kWithZeros && h % 2 == 0 ? 0.0f : rng.uniform(0.0f, 2.0f);
    }
    const size_t n_out = static_cast<size_t>(B * T * HD), n_p = static_cast<size_t>(B * H * T * T);
    std::vector<float> got(n_out + kGuardLen, kGuard), want(n_out);
    std::vector<float> got_p(probs ? n_p + kGuardLen : 0, kGuard), want_p(probs ? n_p : 0);
    cpu::AttentionArgs a;
    a.qkv = qkv.data(), a.head_scale = hsm == HeadScale::kNone ? nullptr : hs.data();
    a.B = B, a.T = T, a.H = H, a.Dh = Dh, a.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    cpu::AttentionArgs k = a, r = a;
    k.out = got.data(), k.probs = probs ? got_p.data() : nullptr;
    r.out = want.data(), r.probs = probs ? want_p.data() : nullptr;
    cpu::attention(k, pool, g_attn_isa, g_attn_kernel);
    cpu::ref_attention(r);
    if (!guard_intact(got, n_out) || (probs && !guard_intact(got_p, n_p))) {
      return check(false, name, "wrote past the end of an output");
    }
    got.resize(n_out);
    check_close(name + " [out]", got, want, kTolAttention);
    if (hsm == HeadScale::kWithZeros) {
      // A head scaled by 0 gives exactly 0, as in the reference (P·0, or O·0 in the flash kernel).
      check(even_heads_zero(got, B * T, H, Dh), name + " [head_scale 0 gives 0]");
    }
    if (probs) {
      got_p.resize(n_p);
      check_close(name + " [probs]", got_p, want_p, kTolAttention);
      // Asking for probs must not change the explicit kernel's out: same arithmetic either way.
      std::vector<float> again(n_out);
      cpu::AttentionArgs k2 = a;
      k2.out = again.data();
      cpu::attention(k2, pool, g_attn_isa, cpu::AttentionKernel::kExplicit);
      check_exact(name + " [out same without probs]", again, got);
    }
    if (flash) {
      // Rows never depend on how tasks fall to threads: one thread gives the same bits.
      std::vector<float> solo(n_out);
      ThreadPool one(1);
      cpu::AttentionArgs k1 = a;
      k1.out = solo.data();
      cpu::attention(k1, one, g_attn_isa, g_attn_kernel);
      check_exact(name + " [same on 1 thread]", solo, got);
    }
  });
}

void test_attention_cases(ThreadPool& pool2, ThreadPool& pool3, ThreadPool& pool1) {
  uint64_t seed = 300;
  test_attention(pool2, 1, 197, 6, 64, HeadScale::kNone, true, seed++);        // ViT-S layer, attentions on
  test_attention(pool2, 3, 197, 2, 16, HeadScale::kWithZeros, false, seed++);  // batch 3, head_mask with 0s
  test_attention(pool2, 3, 197, 3, 8, HeadScale::kWithZeros, true, seed++);
  test_attention(pool2, 2, 1, 3, 8, HeadScale::kNone, true, seed++);    // T = 1
  test_attention(pool2, 1, 5, 2, 7, HeadScale::kRandom, true, seed++);  // odd Dh
  test_attention(pool3, 2, 17, 4, 7, HeadScale::kRandom, false, seed++);
  test_attention(pool2, 1, 33, 3, 65, HeadScale::kNone, true, seed++);  // Dh beyond one register block
  test_attention(pool1, 2, 50, 2, 16, HeadScale::kRandom, true, seed++);
  test_attention(pool2, 1, 1025, 1, 64, HeadScale::kNone, false, seed++);  // ViT-L/7 token count
  test_attention(pool3, 1, 1, 1, 1, HeadScale::kNone, true, seed++);
  // Around the flash kernel's 32-key blocks and 32-row tasks, and the head dims of real models
  // (64; 80 for ViT-H) next to odd ones.
  test_attention(pool2, 1, 2, 2, 24, HeadScale::kNone, false, seed++);  // T = 2
  test_attention(pool2, 2, 31, 2, 64, HeadScale::kRandom, false, seed++);
  test_attention(pool2, 1, 32, 3, 8, HeadScale::kNone, false, seed++);
  test_attention(pool3, 1, 64, 2, 80, HeadScale::kWithZeros, false, seed++);
  test_attention(pool2, 2, 65, 2, 24, HeadScale::kNone, true, seed++);
  test_attention(pool2, 1, 197, 12, 64, HeadScale::kRandom, false, seed++);  // ViT-B layer
  test_attention(pool2, 1, 257, 2, 80, HeadScale::kNone, false, seed++);     // ViT-H/14 at 224
  test_attention(pool2, 2, 197, 2, 64, HeadScale::kNone, false, seed++, Keys::kRising);
  test_attention(pool3, 1, 257, 3, 24, HeadScale::kWithZeros, false, seed++, Keys::kRising);
  test_attention(pool2, 1, 100, 2, 8, HeadScale::kRandom, true, seed++, Keys::kRising);
  // Scores spread over hundreds: most exponentials underflow, rows are nearly one-hot.
  test_attention(pool2, 1, 197, 2, 64, HeadScale::kNone, false, seed++, Keys::kUniform, 12.0f);
  test_attention(pool2, 1, 70, 2, 17, HeadScale::kRandom, false, seed++, Keys::kRising, 12.0f);
}

void test_attention_suite(ThreadPool& pool2, ThreadPool& pool3, ThreadPool& pool1) {
  for (cpu::Isa isa : {cpu::Isa::kScalar, cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kNeon}) {
    if (!cpu::isa_supported(isa)) continue;
    g_attn_isa = isa;
    for (cpu::AttentionKernel kernel : {cpu::AttentionKernel::kExplicit, cpu::AttentionKernel::kFlash}) {
      g_attn_kernel = kernel;
      test_attention_cases(pool2, pool3, pool1);
    }
  }
  g_attn_isa = cpu::default_isa();
  g_attn_kernel = cpu::AttentionKernel::kAuto;
  run_case("attention: the flash kernel refuses to return probabilities", [&] {
    std::vector<float> qkv(3 * 8, 0.5f), out(8), p(1);
    cpu::AttentionArgs a;
    a.qkv = qkv.data(), a.out = out.data(), a.probs = p.data(), a.B = 1, a.T = 1, a.H = 1, a.Dh = 8;
    std::string got = "no exception";
    try {
      cpu::attention(a, pool2, cpu::default_isa(), cpu::AttentionKernel::kFlash);
    } catch (const Error& e) {
      got = e.code();
    }
    check(got == codes::kInternal, "attention: the flash kernel refuses to return probabilities", got);
  });
}

// ---- attention, bf16 on AMX tiles ----------------------------------------------------------------

double g_amx_worst_ref = 0.0, g_amx_worst_f32 = 0.0;  // the worst errors seen, printed by the suite

// The AMX kernel (attention_amx.h) against ref_attention_bf16 (tight) and ref_attention (bf16's
// budget); outputs guarded, zero head scales exact, the same bits on one thread.
void test_attention_amx(ThreadPool& pool, int64_t B, int64_t T, int64_t H, int64_t Dh, HeadScale hsm, uint64_t seed,
                        float spread = 3.0f) {
  const std::string name = "attention[AMX bf16] B=" + std::to_string(B) + " T=" + std::to_string(T) +
                           " H=" + std::to_string(H) + " Dh=" + std::to_string(Dh) +
                           (hsm == HeadScale::kRandom      ? " head_scale"
                            : hsm == HeadScale::kWithZeros ? " head_scale(0s)"
                                                           : "") +
                           (spread != 3.0f ? " spread=" + std::to_string(static_cast<int>(spread)) : "") +
                           " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    const int64_t HD = H * Dh;
    std::vector<float> qkv = rng.vec(static_cast<size_t>(B * T * 3 * HD), -spread, spread);
    std::vector<float> hs(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) hs[h] = hsm == HeadScale::kWithZeros && h % 2 == 0 ? 0.0f : rng.uniform(0.0f, 2.0f);
    const size_t n_out = static_cast<size_t>(B * T * HD);
    std::vector<float> got(n_out + kGuardLen, kGuard), want_bf(n_out), want(n_out);
    cpu::AttentionArgs a;
    a.qkv = qkv.data(), a.head_scale = hsm == HeadScale::kNone ? nullptr : hs.data();
    a.B = B, a.T = T, a.H = H, a.Dh = Dh, a.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    cpu::AttentionArgs k = a, rb = a, r = a;
    k.out = got.data(), rb.out = want_bf.data(), r.out = want.data();
    cpu::attention(k, pool, cpu::Isa::kAvx512, cpu::AttentionKernel::kAmxBf16);
    cpu::ref_attention_bf16(rb);
    cpu::ref_attention(r);
    if (!guard_intact(got, n_out)) return check(false, name, "wrote past the end of the output");
    got.resize(n_out);
    const double e_ref = rel_l2(got.data(), want_bf.data(), n_out), e_f32 = rel_l2(got.data(), want.data(), n_out);
    g_amx_worst_ref = std::max(g_amx_worst_ref, e_ref);
    if (spread <= 3.0f) g_amx_worst_f32 = std::max(g_amx_worst_f32, e_f32);
    check(e_ref <= kTolAttentionBf16Ref, name + " [vs bf16 reference]",
          "rel_l2 " + fmt(e_ref) + " (tol " + fmt(kTolAttentionBf16Ref) + ")");
    const double tol_f32 = spread > 3.0f ? kTolAttentionBf16Wide : kTolAttentionBf16;
    check(e_f32 <= tol_f32, name + " [vs float32]", "rel_l2 " + fmt(e_f32) + " (tol " + fmt(tol_f32) + ")");
    if (hsm == HeadScale::kWithZeros) {
      check(even_heads_zero(got, B * T, H, Dh), name + " [head_scale 0 gives 0]");
    }
    std::vector<float> solo(n_out);
    ThreadPool one(1);
    cpu::AttentionArgs k1 = a;
    k1.out = solo.data();
    cpu::attention(k1, one, cpu::Isa::kAvx512, cpu::AttentionKernel::kAmxBf16);
    check_exact(name + " [same on 1 thread]", solo, got);
  });
}

// The bf16 reference itself, on every machine: close to float32 attention, yet not equal to it
// (it does round).
void test_ref_attention_bf16() {
  run_case("ref_attention_bf16 vs ref_attention", [&] {
    Rng rng(77);
    const int64_t B = 2, T = 37, H = 3, Dh = 32, HD = H * Dh;
    std::vector<float> qkv = rng.vec(static_cast<size_t>(B * T * 3 * HD), -3.0f, 3.0f), hs = rng.vec(3, 0.0f, 2.0f);
    std::vector<float> got(static_cast<size_t>(B * T * HD)), want(got.size());
    cpu::AttentionArgs a;
    a.qkv = qkv.data(), a.head_scale = hs.data(), a.B = B, a.T = T, a.H = H, a.Dh = Dh, a.scale = 0.17f;
    cpu::AttentionArgs r = a;
    a.out = got.data(), r.out = want.data();
    cpu::ref_attention_bf16(a);
    cpu::ref_attention(r);
    const double e = rel_l2(got.data(), want.data(), got.size());
    check(e <= kTolAttentionBf16 && e >= 1e-4, "ref_attention_bf16 vs ref_attention: bf16-sized difference",
          "rel_l2 " + fmt(e) + " (want 1e-4 .. " + fmt(kTolAttentionBf16) + ")");
  });
}

// Which kernel attention() and the unfused qkv_attention pick for the bf16 precision / weights.
void test_attention_amx_dispatch(ThreadPool& pool2) {
  using K = cpu::AttentionKernel;
  using P = cpu::AttentionPrecision;
  const cpu::Isa avx = cpu::Isa::kAvx512;
  cpu::AttentionArgs a;
  a.B = 1, a.T = 197, a.H = 6, a.Dh = 64;
  auto with = [&](auto f) {
    cpu::AttentionArgs c = a;
    f(c);
    return c;
  };
  run_case("attention: kAuto picks the AMX bf16 kernel only where it may", [&] {
    check(cpu::attention_auto_kernel(a, avx, P::kBf16) == K::kAmxBf16, "attention kAuto bf16 ViT-S: AMX");
    check(cpu::attention_auto_kernel(a, avx, P::kFloat32) == K::kFlash, "attention kAuto float32: flash");
    check(cpu::attention_auto_kernel(with([](auto& c) { c.Dh = 48; }), avx, P::kBf16) == K::kFlash,
          "attention kAuto bf16 Dh=48: flash");
    check(cpu::attention_auto_kernel(with([](auto& c) { c.T = cpu::kAmxMaxT + 1; }), avx, P::kBf16) == K::kFlash,
          "attention kAuto bf16 T=2049: flash");
    float p = 0.0f;
    check(cpu::attention_auto_kernel(with([&](auto& c) { c.probs = &p; }), avx, P::kBf16) == K::kExplicit,
          "attention kAuto bf16 with probs: explicit");
    check(cpu::attention_auto_kernel(a, cpu::Isa::kAvx2, P::kBf16) == K::kFlash, "attention kAuto bf16 avx2: flash");
    cpu::set_amx_enabled(false);
    check(cpu::attention_auto_kernel(a, avx, P::kBf16) == K::kFlash, "attention kAuto bf16, AMX disabled: flash");
    cpu::set_amx_enabled(true);
  });
  run_case("attention: kAmxBf16 refused where it cannot run", [&] {
    std::vector<float> qkv(static_cast<size_t>(3 * 3 * 48), 0.5f), out(static_cast<size_t>(3 * 48));
    cpu::AttentionArgs c;
    c.qkv = qkv.data(), c.out = out.data(), c.B = 1, c.T = 3, c.H = 1, c.Dh = 48;
    expect_error("attention: kAmxBf16 with Dh=48 throws ERR_INTERNAL", codes::kInternal, "AMX bf16",
                 [&] { cpu::attention(c, pool2, avx, K::kAmxBf16); });
  });
  // The unfused qkv_attention (bf16 and int8 weights) against the same GEMM followed by the bf16
  // reference: float32 attention would miss it by bf16's error, far above the tolerance.
  for (WeightDtype dt : {WeightDtype::kBFloat16, WeightDtype::kInt8, WeightDtype::kFloat32}) {
    const char* dn = dt == WeightDtype::kBFloat16 ? "bf16" : dt == WeightDtype::kInt8 ? "int8" : "float32";
    const std::string name = std::string("qkv_attention[avx512] ") + dn + " weights: attention " +
                             (dt == WeightDtype::kFloat32 ? "in float32" : "on AMX in bf16");
    run_case(name, [&] {
      Rng rng(91);
      const int64_t B = 2, T = 50, H = 2, Dh = 64, D = 96, M = B * T, N = 3 * H * Dh, HD = H * Dh;
      std::vector<float> x = rng.vec(static_cast<size_t>(M * D)), W = rng.vec(static_cast<size_t>(N * D), -0.3f, 0.3f),
                         bias = rng.vec(static_cast<size_t>(N)), hs = rng.vec(static_cast<size_t>(H), 0.0f, 2.0f);
      auto Wp = cpu::PackedLinear::pack(W.data(), N, D, dt);
      std::vector<float> got(static_cast<size_t>(M * HD)), want(got.size()), qkv(static_cast<size_t>(M * N));
      cpu::QkvAttentionArgs q;
      q.a = x.data(), q.W = Wp.get(), q.bias = bias.data(), q.out = got.data(), q.head_scale = hs.data();
      q.B = B, q.T = T, q.H = H, q.Dh = Dh, q.D = D, q.scale = 0.125f;
      cpu::qkv_attention(q, pool2, avx, cpu::QkvAttentionMode::kUnfused);
      cpu::GemmArgs g;
      g.A = x.data(), g.lda = D, g.Wp = Wp.get(), g.bias = bias.data(), g.C = qkv.data(), g.M = M, g.N = N, g.K = D;
      cpu::gemm(g, pool2, avx);
      cpu::AttentionArgs at;
      at.qkv = qkv.data(), at.out = want.data(), at.head_scale = hs.data(), at.B = B, at.T = T, at.H = H, at.Dh = Dh;
      at.scale = q.scale;
      if (dt == WeightDtype::kFloat32) {
        cpu::attention(at, pool2, avx, K::kFlash);
        check_exact(name, got, want);
      } else {
        cpu::ref_attention_bf16(at);
        check_close(name, got, want, kTolAttentionBf16Ref);
      }
    });
  }
}

void test_attention_amx_suite(ThreadPool& pool2, ThreadPool& pool3, ThreadPool& pool1) {
  test_ref_attention_bf16();
  cpu::set_amx_enabled(true);  // whatever VITMSN_CPU_AMX says: this suite is about the AMX kernel
  cpu::AttentionArgs probe;
  probe.T = 1, probe.Dh = 32;
  if (!cpu::attention_amx_usable(cpu::Isa::kAvx512, probe)) {
    std::printf("SKIP  attention[AMX bf16]: this CPU (or compiler) lacks AMX bf16\n");
    return;
  }
  std::printf("PATH  attention[AMX bf16]\n");
  uint64_t seed = 700;
  // T around the 16-row tiles, 32-key chunks and 32-row tasks; ViT token counts (50, 197, 257).
  test_attention_amx(pool2, 1, 1, 1, 32, HeadScale::kNone, seed++);
  test_attention_amx(pool2, 3, 1, 6, 64, HeadScale::kRandom, seed++);
  test_attention_amx(pool3, 1, 17, 6, 96, HeadScale::kNone, seed++);
  test_attention_amx(pool2, 3, 17, 1, 32, HeadScale::kWithZeros, seed++);
  test_attention_amx(pool2, 1, 50, 1, 64, HeadScale::kRandom, seed++);
  test_attention_amx(pool1, 3, 50, 6, 32, HeadScale::kNone, seed++);
  test_attention_amx(pool2, 1, 197, 6, 64, HeadScale::kNone, seed++);  // ViT-S layer
  test_attention_amx(pool2, 3, 197, 6, 64, HeadScale::kWithZeros, seed++);
  test_attention_amx(pool3, 1, 197, 1, 96, HeadScale::kRandom, seed++);
  test_attention_amx(pool2, 1, 257, 6, 32, HeadScale::kRandom, seed++);
  test_attention_amx(pool2, 3, 257, 1, 96, HeadScale::kNone, seed++);
  test_attention_amx(pool2, 1, 257, 6, 64, HeadScale::kWithZeros, seed++);
  test_attention_amx(pool2, 1, 197, 12, 64, HeadScale::kNone, seed++);  // ViT-B layer
  test_attention_amx(pool2, 1, 1025, 1, 64, HeadScale::kNone, seed++);  // ViT-L/7 token count
  // Scores spread over hundreds: near one-hot rows, most exponentials underflow.
  test_attention_amx(pool2, 1, 197, 2, 64, HeadScale::kNone, seed++, 12.0f);
  std::printf("INFO  attention[AMX bf16] worst rel_l2: %.2e vs the bf16 reference, %.2e vs float32 (spread 3)\n",
              g_amx_worst_ref, g_amx_worst_f32);
  test_attention_amx_dispatch(pool2);
}

// ---- patchify -------------------------------------------------------------------------------------

void test_patchify(ThreadPool& pool, int64_t B, int64_t C, int64_t Hi, int64_t Wi, int64_t p, uint64_t seed) {
  const std::string name = "patchify B=" + std::to_string(B) + " C=" + std::to_string(C) + " " + std::to_string(Hi) +
                           "x" + std::to_string(Wi) + " p=" + std::to_string(p) +
                           " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    std::vector<float> x = rng.vec(static_cast<size_t>(B * C * Hi * Wi));
    const size_t n = static_cast<size_t>(B * (Hi / p) * (Wi / p) * C * p * p);
    std::vector<float> got(n + kGuardLen, kGuard), want(n);
    cpu::PatchifyArgs a{x.data(), nullptr, B, C, Hi, Wi, p};
    cpu::PatchifyArgs k = a, r = a;
    k.patches = got.data(), r.patches = want.data();
    cpu::patchify(k, pool);
    cpu::ref_patchify(r);
    check_guarded(name, got, want, n, kExact);
  });
}

void test_patchify_suite(ThreadPool& pool2, ThreadPool& pool1) {
  uint64_t seed = 400;
  test_patchify(pool2, 1, 3, 224, 224, 16, seed++);
  test_patchify(pool2, 3, 3, 224, 224, 16, seed++);
  test_patchify(pool2, 2, 3, 37, 50, 8, seed++);  // leftover rows and columns, non-square
  test_patchify(pool2, 1, 3, 230, 100, 16, seed++);
  test_patchify(pool1, 2, 2, 5, 9, 4, seed++);      // grid 1×2
  test_patchify(pool2, 1, 3, 3, 3, 4, seed++);      // image smaller than a patch: nothing to write
  test_patchify(pool2, 2, 1, 6, 5, 1, seed++);      // p = 1
  test_patchify(pool2, 1, 3, 224, 224, 7, seed++);  // ViT-L/7 grid 32×32
}

// ---- embed_tokens ---------------------------------------------------------------------------------

enum class Mask { kNull, kRandom, kAll, kNone };

void test_embed(ThreadPool& pool, int64_t B, int64_t N, int64_t D, Mask mm, uint64_t seed) {
  const char* mask_name[] = {"", " mask", " mask=all", " mask=none"};
  const std::string name = "embed_tokens B=" + std::to_string(B) + " N=" + std::to_string(N) +
                           " D=" + std::to_string(D) + mask_name[static_cast<int>(mm)] +
                           " threads=" + std::to_string(pool.size());
  run_case(name, [&] {
    Rng rng(seed);
    std::vector<float> pe = rng.vec(static_cast<size_t>(B * N * D)), cls = rng.vec(static_cast<size_t>(D)),
                       pos = rng.vec(static_cast<size_t>((N + 1) * D)), mt = rng.vec(static_cast<size_t>(D));
    std::vector<uint8_t> mask(static_cast<size_t>(B * N));
    for (size_t i = 0; i < mask.size(); ++i) {
      // Any nonzero byte means masked, not only 1.
      mask[i] = mm == Mask::kAll ? static_cast<uint8_t>(1 + i % 255) : mm == Mask::kRandom ? (rng.next() % 3 == 0) : 0;
    }
    const size_t n = static_cast<size_t>(B * (N + 1) * D);
    std::vector<float> got(n + kGuardLen, kGuard), want(n);
    cpu::EmbedTokensArgs a{pe.data(), cls.data(), pos.data(), mt.data(), mm == Mask::kNull ? nullptr : mask.data(),
                           nullptr,   B,          N,          D};
    cpu::EmbedTokensArgs k = a, r = a;
    k.tokens = got.data(), r.tokens = want.data();
    cpu::embed_tokens(k, pool);
    cpu::ref_embed_tokens(r);
    check_guarded(name, got, want, n, kExact);
  });
}

void test_embed_suite(ThreadPool& pool2, ThreadPool& pool1) {
  uint64_t seed = 500;
  test_embed(pool2, 3, 196, 384, Mask::kRandom, seed++);
  test_embed(pool2, 1, 196, 384, Mask::kNull, seed++);
  test_embed(pool2, 2, 5, 7, Mask::kAll, seed++);
  test_embed(pool1, 2, 37, 29, Mask::kRandom, seed++);
  test_embed(pool2, 2, 3, 5, Mask::kNone, seed++);
  test_embed(pool2, 2, 0, 8, Mask::kNull, seed++);  // no patches: CLS only
  run_case("embed_tokens masked without mask_token throws ERR_NO_MASK_TOKEN", [&] {
    std::vector<float> pe(8), cls(4), pos(12), out(12);
    std::vector<uint8_t> mask = {0, 1};
    cpu::EmbedTokensArgs a{pe.data(), cls.data(), pos.data(), nullptr, mask.data(), out.data(), 1, 2, 4};
    try {
      cpu::embed_tokens(a, pool2);
      check(false, "embed_tokens masked without mask_token throws ERR_NO_MASK_TOKEN", "no exception");
    } catch (const Error& e) {
      check(e.code() == codes::kNoMaskToken, "embed_tokens masked without mask_token throws ERR_NO_MASK_TOKEN",
            e.code());
    }
  });
}

// ---- thread pool ----------------------------------------------------------------------------------

// Every index in [0, n) is visited exactly once, by chunks that do not overlap.
bool covers_once(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(std::max<int64_t>(n, 1)));
  for (auto& h : hits) h.store(0);
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i)
    if (hits[static_cast<size_t>(i)].load() != 1) return false;
  return true;
}

void test_thread_pool() {
  run_case("pool covers [0, n) exactly once", [&] {
    bool ok = true;
    std::string detail;
    for (int threads : {1, 2, 3, 8}) {
      ThreadPool pool(threads);
      for (int64_t n : {0, 1, 2, 3, 7, 64, 1000, 100003}) {
        if (!covers_once(pool, n)) {
          ok = false;
          detail += " threads=" + std::to_string(threads) + " n=" + std::to_string(n);
        }
      }
    }
    check(ok, "pool covers [0, n) exactly once (threads 1/2/3/8, n 0..100003)", detail);
  });

  run_case("pool threads=1 runs inline", [&] {
    ThreadPool pool(1);
    const std::thread::id me = std::this_thread::get_id();
    bool inline_only = true;
    int calls = 0;
    pool.parallel_for(50, [&](int64_t, int64_t) {
      ++calls;
      if (std::this_thread::get_id() != me) inline_only = false;
    });
    check(pool.size() == 1 && inline_only && calls == 1, "pool threads=1 runs inline",
          "size " + std::to_string(pool.size()) + ", calls " + std::to_string(calls));
    ThreadPool zero(0);
    check(zero.size() == 1 && covers_once(zero, 10), "pool threads=0 behaves as 1");
  });

  run_case("pool uses its workers", [&] {
    ThreadPool pool(2);
    std::atomic<int> others{0};
    const std::thread::id me = std::this_thread::get_id();
    // Each chunk waits a little so the worker certainly gets some of them.
    pool.parallel_for(8, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() != me) others++;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    });
    check(pool.size() == 2 && others.load() > 0, "pool uses its workers");
  });

  // The one threshold every op's parallel regions go through (thread_pool.h): below it a job is one
  // call on the calling thread, from it on the workers too.
  run_case("pool runs work below kMinParallelWork on the calling thread", [&] {
    ThreadPool pool(2);
    const std::thread::id me = std::this_thread::get_id();
    int calls = 0;
    bool inline_only = true;
    int64_t begin = -1, end = -1;
    pool.parallel_for(
        64,
        [&](int64_t b, int64_t e) {
          ++calls, begin = b, end = e;
          if (std::this_thread::get_id() != me) inline_only = false;
        },
        cpu::kMinParallelWork - 1);
    check(calls == 1 && begin == 0 && end == 64 && inline_only,
          "pool: work below kMinParallelWork is one call fn(0, n) on the calling thread");
    std::atomic<int> chunks{0}, others{0};
    pool.parallel_for(
        8,
        [&](int64_t, int64_t) {
          chunks++;
          if (std::this_thread::get_id() != me) others++;
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        },
        cpu::kMinParallelWork);
    check(chunks.load() > 1 && others.load() > 0,
          "pool: work of kMinParallelWork is split into chunks the workers share");
  });

  for (int threads : {1, 2, 3}) {
    const std::string name = "pool rethrows fn's exception on the caller, threads=" + std::to_string(threads);
    run_case(name, [&] {
      ThreadPool pool(threads);
      bool caught = false;
      try {
        pool.parallel_for(100, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            if (i == 57) throw Error(codes::kInternal, "boom at 57");
        });
      } catch (const Error& e) {
        caught = e.code() == codes::kInternal && std::string(e.what()) == "boom at 57";
      }
      // The pool must still work after a failed job.
      check(caught && covers_once(pool, 1000), name);
    });
  }

  run_case("pool survives exceptions thrown by every chunk", [&] {
    ThreadPool pool(3);
    int caught = 0;
    for (int rep = 0; rep < 50; ++rep) {
      try {
        pool.parallel_for(64, [&](int64_t, int64_t) { throw std::runtime_error("every chunk"); });
      } catch (const std::runtime_error&) {
        ++caught;
      }
    }
    check(caught == 50 && covers_once(pool, 999), "pool survives exceptions thrown by every chunk (50 jobs)");
  });

  run_case("pool nested parallel_for runs inline", [&] {
    ThreadPool pool(2);
    std::atomic<int64_t> sum{0};
    pool.parallel_for(10, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        pool.parallel_for(10, [&](int64_t b2, int64_t e2) {
          for (int64_t j = b2; j < e2; ++j) sum += i * 10 + j;
        });
    });
    check(sum.load() == 99 * 100 / 2, "pool nested parallel_for runs inline");
  });

  run_case("pool concurrent parallel_for from 3 threads", [&] {
    ThreadPool pool(2);
    constexpr int kCallers = 3, kJobs = 300;
    std::vector<int64_t> totals(kCallers, 0);
    std::vector<std::thread> callers;
    for (int c = 0; c < kCallers; ++c) {
      callers.emplace_back([&, c] {
        for (int job = 0; job < kJobs; ++job) {
          const int64_t n = 1 + (job * 37 + c * 11) % 500;
          std::vector<int64_t> v(static_cast<size_t>(n), 0);
          pool.parallel_for(n, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) v[static_cast<size_t>(i)] = i + c;
          });
          int64_t s = 0;
          for (int64_t x : v) s += x;
          if (s == n * (n - 1) / 2 + n * c) totals[c]++;
        }
      });
    }
    for (auto& t : callers) t.join();
    bool ok = true;
    for (int64_t t : totals) ok = ok && t == kJobs;
    check(ok, "pool concurrent parallel_for from 3 threads (300 jobs each)");
  });

  run_case("pool construct/destroy repeatedly", [&] {
    for (int i = 0; i < 100; ++i) {
      ThreadPool pool(1 + i % 4);
      if (i % 2) covers_once(pool, 17);
    }
    check(true, "pool construct/destroy 100 times (idle and after a job)");
  });
}

// Several forwards at once: three threads run GEMMs on one shared pool; each result must equal the
// single-threaded kernel's bit for bit (each C element is computed the same way whatever thread).
void test_concurrent_kernels(ThreadPool& pool2) {
  run_case("gemm+attention from 3 threads on one pool", [&] {
    Rng rng(900);
    const int64_t M = 197, K = 384, N = 384;
    std::vector<float> A = rng.vec(static_cast<size_t>(M * K)), W = rng.vec(static_cast<size_t>(N * K), -0.1f, 0.1f),
                       bias = rng.vec(static_cast<size_t>(N));
    std::vector<float> qkv = rng.vec(static_cast<size_t>(197 * 3 * 384));
    ThreadPool solo(1);
    cpu::GemmArgs g;
    g.A = A.data(), g.lda = K, g.W = W.data(), g.bias = bias.data(), g.M = M, g.N = N, g.K = K,
    g.epilogue = Epilogue::kGelu;
    std::vector<float> want(static_cast<size_t>(M * N));
    cpu::GemmArgs gs = g;
    gs.C = want.data();
    cpu::gemm(gs, solo);
    cpu::AttentionArgs at;
    at.qkv = qkv.data(), at.B = 1, at.T = 197, at.H = 6, at.Dh = 64, at.scale = 0.125f;
    std::vector<float> want_at(static_cast<size_t>(197 * 384));
    cpu::AttentionArgs as = at;
    as.out = want_at.data();
    cpu::attention(as, solo);
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int c = 0; c < 3; ++c) {
      ts.emplace_back([&] {
        std::vector<float> C(static_cast<size_t>(M * N)), out(static_cast<size_t>(197 * 384));
        for (int rep = 0; rep < 10; ++rep) {
          cpu::GemmArgs gc = g;
          gc.C = C.data();
          cpu::gemm(gc, pool2);
          cpu::AttentionArgs ac = at;
          ac.out = out.data();
          cpu::attention(ac, pool2);
          if (C != want || out != want_at) bad++;
        }
      });
    }
    for (auto& t : ts) t.join();
    check(bad.load() == 0, "gemm+attention from 3 threads on one pool match 1-thread results bit for bit");
  });
}

// ---- backend --------------------------------------------------------------------------------------

void test_backend() {
  run_case("backend memory", [&] {
    std::unique_ptr<Backend> be = make_cpu_backend(2);
    check(be->name() == "cpu", "backend name is cpu");
    bool aligned = true;
    std::vector<DevicePtr> ps;
    for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(17), size_t(1000), size_t(1) << 20}) {
      DevicePtr p = be->alloc(n);
      aligned = aligned && p && p.type() == StorageType::kFloat32 && reinterpret_cast<uintptr_t>(p.get()) % 64 == 0;
      ps.push_back(p);
    }
    for (DevicePtr p : ps) be->release(p);
    be->release(nullptr);
    check(aligned, "backend alloc is 64-byte aligned (n = 0, 1, 3, 17, 1000, 2^20)");

    for (size_t n : {std::numeric_limits<size_t>::max(), std::numeric_limits<size_t>::max() / 4,
                     std::numeric_limits<size_t>::max() / 8, size_t(1) << 50}) {
      std::string got = "no exception";
      try {
        be->release(be->alloc(n));
      } catch (const Error& e) {
        got = e.code();
      }
      check(got == codes::kOutOfMemory, "backend alloc(" + std::to_string(n) + ") throws ERR_OUT_OF_MEMORY", got);
    }

    Rng rng(1);
    std::vector<float> host = rng.vec(1000), back(1000);
    DevicePtr d = be->alloc(1000);
    be->upload(d, host.data(), 1000);
    be->download(back.data(), d, 1000);
    check_exact("backend upload/download round trip", back, host);
    // copy_rows: 7 rows of 5 floats from stride 9 into stride 6.
    DevicePtr d2 = be->alloc(100);
    std::vector<float> init(100, -1.0f);
    be->upload(d2, init.data(), 100);
    be->copy_rows(d2, 6, d + 3, 9, 7, 5);
    std::vector<float> got(100), want(init);
    be->download(got.data(), d2, 100);
    for (int r = 0; r < 7; ++r)
      for (int i = 0; i < 5; ++i) want[r * 6 + i] = host[3 + r * 9 + i];
    check_exact("backend copy_rows with strides", got, want);
    be->copy_rows(d2, 10, d, 10, 10, 10);  // dense: one memcpy
    be->download(got.data(), d2, 100);
    check_exact("backend copy_rows dense", got, std::vector<float>(host.begin(), host.begin() + 100));
    be->release(d);
    be->release(d2);
  });

  run_case("backend ops dispatch to the kernels", [&] {
    std::unique_ptr<Backend> be = make_cpu_backend(0);
    Rng rng(2);
    const int64_t M = 37, K = 29, N = 65;
    std::vector<float> A = rng.vec(M * K), W = rng.vec(N * K), bias = rng.vec(N), C(M * N), want(M * N);
    DevicePtr dA = be->alloc(A.size()), dW = be->alloc(W.size()), db = be->alloc(N), dC = be->alloc(C.size());
    be->upload(dA, A.data(), A.size());
    be->upload(dW, W.data(), W.size());
    be->upload(db, bias.data(), N);
    GemmArgs g;
    g.A = dA, g.lda = K, g.W = dW, g.bias = db, g.C = dC, g.M = M, g.N = N, g.K = K, g.epilogue = Epilogue::kGelu;
    be->gemm(g);
    be->download(C.data(), dC, C.size());
    cpu::GemmArgs r;
    r.A = A.data(), r.lda = K, r.W = W.data(), r.bias = bias.data(), r.C = want.data(), r.M = M, r.N = N, r.K = K;
    r.epilogue = Epilogue::kGelu;
    cpu::ref_gemm(r);
    check_close("backend gemm (threads = hardware_concurrency)", C, want, kTolGemm);
    for (DevicePtr p : {dA, dW, db, dC}) be->release(p);
  });
}

}  // namespace

int main() {
  try {
    ThreadPool pool1(1), pool2(2), pool3(3);
    test_thread_pool();
    test_gemm_suite(pool2, pool3, pool1);
    test_mlp_suite(pool2, pool3, pool1);
    test_qkv_attention_suite(pool2, pool3, pool1);
    test_layernorm_suite(pool2, pool1);
    test_attention_suite(pool2, pool3, pool1);
    test_attention_amx_suite(pool2, pool3, pool1);
    test_patchify_suite(pool2, pool1);
    test_embed_suite(pool2, pool1);
    test_concurrent_kernels(pool2);
    test_backend();
  } catch (const std::exception& e) {
    check(false, "test program", std::string("uncaught exception: ") + e.what());
  }
  return finish();
}
