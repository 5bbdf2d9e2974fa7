// Every Backend op on every backend this machine can run, against the scalar references
// (cpu/reference.h), on awkward shapes (ggml's test-backend-ops idea): the CPU backend on the path
// VITMSN_CPU_ISA picks (test/native.test.ts runs this once per supported path), and CUDA in
// float32, float16 and bfloat16 wherever a GPU is usable — so a GPU run shows within seconds which
// op is wrong. Inputs go through the backend's own upload/download (a 16-bit backend rounds them),
// tolerances per storage type below.
//
//   test_engine_backend_ops          (VITMSN_TEST_VERBOSE=1 prints every comparison)
#include "tests/harness.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/device_array.h"
#include "backend/factories.h"
#include "backend/registry.h"
#include "common/error.h"
#include "cpu/reference.h"
#include "engine/image/preprocess.h"

using namespace vitmsn;

namespace {

struct Target {
  std::string name;
  std::shared_ptr<Backend> be;
  double tol;                                   // relative L2 vs the float64-accumulating references
  WeightDtype weights = WeightDtype::kFloat32;  // how Linear weights are prepared
};

// Deterministic inputs in [-scale, scale).
std::vector<float> random_vec(size_t n, uint64_t seed, float scale = 1.0f) { return Rng(seed).vec(n, -scale, scale); }

void compare(const Target& t, const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
             double tol_scale = 1) {
  const double e = got.size() == want.size() ? rel_l2(got.data(), want.data(), got.size()) : INFINITY;
  const double tol = t.tol * tol_scale;
  const bool finite = std::all_of(got.begin(), got.end(), [](float x) { return std::isfinite(x); });
  if (g_verbose) std::printf("%s %s: rel_l2 %.3g (tol %.3g)\n", t.name.c_str(), what.c_str(), e, tol);
  check(finite && got.size() == want.size() && e <= tol,
        t.name + " " + what + ": rel_l2 " + std::to_string(e) + " (tol " + std::to_string(tol) + ")");
}

// A host vector on the backend, and back.
struct OnDevice {
  OnDevice(Backend& be, const std::vector<float>& host) : a(be, host.size()), n(host.size()) {
    if (n) be.upload(a.get(), host.data(), n);
  }
  OnDevice(Backend& be, size_t n_) : a(be, n_), n(n_) {}
  std::vector<float> get(Backend& be) const {
    std::vector<float> h(n);
    if (n) be.download(h.data(), a.get(), n);
    return h;
  }
  DevicePtr p() const { return a.get(); }
  DeviceArray a;
  size_t n;
};

// The host values a backend actually holds after upload (a 16-bit backend rounds): references are
// computed on these, so the comparison measures the op, not the input rounding.
std::vector<float> as_stored(Backend& be, const std::vector<float>& v) { return OnDevice(be, v).get(be); }

void test_gemm(const Target& t) {
  Backend& be = *t.be;
  struct Case {
    int64_t M, N, K, lda;
    bool bias, residual, gelu;
  };
  const Case cases[] = {{1, 1, 1, 1, false, false, false},       {3, 5, 7, 9, true, false, false},
                        {197, 384, 384, 384, true, true, false}, {50, 96, 33, 40, true, false, true},
                        {257, 80, 64, 64, false, true, false},   {17, 1536, 384, 384, true, false, true},
                        {2, 384, 1536, 1536, true, true, false}};
  int seed = 1;
  for (const Case& c : cases) {
    const std::string name = "gemm " + std::to_string(c.M) + "x" + std::to_string(c.N) + "x" + std::to_string(c.K) +
                             (c.bias ? " +bias" : "") + (c.residual ? " +res" : "") + (c.gelu ? " +gelu" : "");
    auto A = as_stored(be, random_vec(static_cast<size_t>(c.M * c.lda), seed++));
    auto W = random_vec(static_cast<size_t>(c.N * c.K), seed++, 0.1f);
    auto bias = as_stored(be, random_vec(static_cast<size_t>(c.N), seed++));
    auto C0 = as_stored(be, random_vec(static_cast<size_t>(c.M * c.N), seed++));
    std::unique_ptr<PreparedLinear> Wp = be.prepare_linear(W.data(), c.N, c.K, t.weights);
    // The reference reads the weights as the backend stores them (their own rounding in 16 bits).
    OnDevice dW(be, W);
    W = dW.get(be);
    OnDevice dA(be, A), db(be, bias), dC(be, C0);
    GemmArgs g;
    g.A = dA.p(), g.lda = c.lda, g.Wp = Wp.get(), g.bias = c.bias ? db.p() : nullptr, g.C = dC.p(),
    g.residual = c.residual ? dC.p() : nullptr, g.M = c.M, g.N = c.N, g.K = c.K;
    g.epilogue = c.gelu ? Epilogue::kGelu : Epilogue::kNone;
    be.gemm(g);
    std::vector<float> want = C0;
    cpu::GemmArgs r;
    r.A = A.data(), r.lda = c.lda, r.W = W.data(), r.bias = c.bias ? bias.data() : nullptr, r.C = want.data(),
    r.residual = c.residual ? want.data() : nullptr, r.M = c.M, r.N = c.N, r.K = c.K, r.epilogue = g.epilogue;
    cpu::ref_gemm(r);
    compare(t, name, dC.get(be), want, c.gelu ? 2 : 1);
  }
}

void test_layernorm(const Target& t) {
  Backend& be = *t.be;
  int seed = 100;
  for (auto [rows, D] : {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {197, 384}, {50, 768}, {2, 33}}) {
    auto x = as_stored(be, random_vec(static_cast<size_t>(rows * D), seed++, 3.0f));
    auto g = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    auto b = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    OnDevice dx(be, x), dg(be, g), db(be, b), dy(be, x.size());
    be.layernorm({dx.p(), dg.p(), db.p(), dy.p(), rows, D, 1e-6f});
    std::vector<float> want(x.size());
    cpu::ref_layernorm({x.data(), g.data(), b.data(), want.data(), rows, D, 1e-6f});
    compare(t, "layernorm " + std::to_string(rows) + "x" + std::to_string(D), dy.get(be), want);
    be.layernorm({dx.p(), dg.p(), db.p(), dx.p(), rows, D, 1e-6f});  // in place
    compare(t, "layernorm in place " + std::to_string(rows) + "x" + std::to_string(D), dx.get(be), want);
  }
}

// upload → download round trips, bit for bit (inputs already in the storage type): sizes below,
// at and well past the CUDA backend's staging threshold and slot size (2 and 8 MiB), so a GPU run
// exercises the pinned-slot pipeline with several chunks both ways and the direct path.
void test_transfers(const Target& t) {
  Backend& be = *t.be;
  int seed = 150;
  for (size_t n : {size_t{1}, size_t{1000}, (size_t{2} << 20) / 4 - 1, (size_t{2} << 20) / 4, (size_t{8} << 20) / 4 + 3,
                   size_t{5000001}}) {
    const std::vector<float> orig = random_vec(n, seed++, 3.0f);
    const std::vector<float> host = as_stored(be, orig);  // one round trip: the storage type's rounding only
    compare(t, "upload/download of " + std::to_string(n) + " values", host, orig);
    const OnDevice d(be, host);
    const std::vector<float> back = d.get(be);  // a second one changes nothing
    check(back.size() == n && std::memcmp(back.data(), host.data(), n * sizeof(float)) == 0,
          t.name + " second round trip of " + std::to_string(n) + " values, bit for bit");
  }
}

void test_attention(const Target& t) {
  Backend& be = *t.be;
  struct Case {
    int64_t B, T, H, Dh;
    bool probs, head_scale;
  };
  const Case cases[] = {{1, 1, 1, 8, false, false},
                        {2, 17, 4, 8, true, true},
                        {1, 197, 6, 64, false, false},
                        {3, 50, 2, 64, true, false},
                        {1, 257, 2, 80, false, true},
                        {2, 197, 1, 96, false, false},
                        {1, 65, 3, 32, true, true},
                        // Shapes of the CUDA whole-head kernel (VITMSN_CUDA_ATTENTION=head forces it
                        // at these small grids): T of one key step, exactly one, the most (256),
                        // odd k-steps (Dh 16, 48), a second m-tile wholly past T (T = 50, 200).
                        {2, 1, 2, 64, false, false},
                        {1, 32, 2, 64, false, false},
                        {2, 50, 3, 64, false, true},
                        {1, 256, 2, 48, false, false},
                        {3, 33, 2, 16, false, false},
                        {1, 200, 4, 32, false, true}};
  int seed = 200;
  for (const Case& c : cases) {
    const std::string name = "attention B" + std::to_string(c.B) + " T" + std::to_string(c.T) + " H" +
                             std::to_string(c.H) + " Dh" + std::to_string(c.Dh) + (c.probs ? " +probs" : "") +
                             (c.head_scale ? " +head_scale" : "");
    const int64_t D = c.H * c.Dh;
    auto qkv = as_stored(be, random_vec(static_cast<size_t>(c.B * c.T * 3 * D), seed++, 2.0f));
    auto hs = as_stored(be, random_vec(static_cast<size_t>(c.H), seed++));
    OnDevice dq(be, qkv), dhs(be, hs), dout(be, static_cast<size_t>(c.B * c.T * D));
    OnDevice dp(be, c.probs ? static_cast<size_t>(c.B * c.H * c.T * c.T) : 0);
    AttentionArgs a;
    a.qkv = dq.p(), a.out = dout.p(), a.head_scale = c.head_scale ? dhs.p() : nullptr,
    a.probs = c.probs ? dp.p() : nullptr;
    a.B = c.B, a.T = c.T, a.H = c.H, a.Dh = c.Dh, a.scale = 1.0f / std::sqrt(static_cast<float>(c.Dh));
    be.attention(a);
    std::vector<float> want(dout.n), want_p(dp.n);
    cpu::AttentionArgs r;
    r.qkv = qkv.data(), r.out = want.data(), r.head_scale = c.head_scale ? hs.data() : nullptr,
    r.probs = c.probs ? want_p.data() : nullptr;
    r.B = c.B, r.T = c.T, r.H = c.H, r.Dh = c.Dh, r.scale = a.scale;
    cpu::ref_attention(r);
    compare(t, name, dout.get(be), want);
    if (c.probs) compare(t, name + " [probs]", dp.get(be), want_p);
  }
}

void test_fused(const Target& t) {
  Backend& be = *t.be;
  int seed = 300;
  // qkv_attention with LayerNorm in front, against LN → GEMM → attention references.
  for (auto [B, T, H, Dh] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 197, 6, 64}, {2, 50, 4, 32}, {1, 17, 3, 16}}) {
    const int64_t D = H * Dh, M = B * T;
    auto x = as_stored(be, random_vec(static_cast<size_t>(M * D), seed++, 2.0f));
    auto g = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    auto b = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    auto W = random_vec(static_cast<size_t>(3 * D * D), seed++, 0.1f);
    auto bias = as_stored(be, random_vec(static_cast<size_t>(3 * D), seed++));
    auto Wp = be.prepare_linear(W.data(), 3 * D, D, t.weights);
    W = OnDevice(be, W).get(be);
    OnDevice dx(be, x), dg(be, g), db(be, b), dbias(be, bias), dout(be, x.size());
    QkvAttentionArgs a;
    a.a = dx.p(), a.ln = {dg.p(), db.p(), 1e-6f}, a.W = Wp.get(), a.bias = dbias.p(), a.out = dout.p();
    a.B = B, a.T = T, a.H = H, a.Dh = Dh, a.D = D, a.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    be.qkv_attention(a);
    std::vector<float> ln(x.size()), qkv(static_cast<size_t>(M * 3 * D)), want(x.size());
    cpu::ref_layernorm({x.data(), g.data(), b.data(), ln.data(), M, D, 1e-6f});
    cpu::GemmArgs gr;
    gr.A = ln.data(), gr.lda = D, gr.W = W.data(), gr.bias = bias.data(), gr.C = qkv.data(), gr.M = M, gr.N = 3 * D,
    gr.K = D;
    cpu::ref_gemm(gr);
    cpu::AttentionArgs ar;
    ar.qkv = qkv.data(), ar.out = want.data(), ar.B = B, ar.T = T, ar.H = H, ar.Dh = Dh, ar.scale = a.scale;
    cpu::ref_attention(ar);
    compare(t,
            "qkv_attention (LN in front) B" + std::to_string(B) + " T" + std::to_string(T) + " D" + std::to_string(D),
            dout.get(be), want, 2);
  }
  // mlp with LayerNorm in front, in place on out.
  for (auto [M, D, I] :
       {std::tuple<int64_t, int64_t, int64_t>{197, 384, 1536}, {3, 33, 70}, {56, 64, 128}, {1, 768, 3072}}) {
    auto x = as_stored(be, random_vec(static_cast<size_t>(M * D), seed++, 2.0f));
    auto g = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    auto b = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    auto W1 = random_vec(static_cast<size_t>(I * D), seed++, 0.1f),
         W2 = random_vec(static_cast<size_t>(D * I), seed++, 0.1f);
    auto b1 = as_stored(be, random_vec(static_cast<size_t>(I), seed++)),
         b2 = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    auto W1p = be.prepare_linear(W1.data(), I, D, t.weights), W2p = be.prepare_linear(W2.data(), D, I, t.weights);
    W1 = OnDevice(be, W1).get(be), W2 = OnDevice(be, W2).get(be);
    OnDevice dx(be, x), dg(be, g), db(be, b), db1(be, b1), db2(be, b2);
    MlpArgs a;
    a.a = dx.p(), a.ln = {dg.p(), db.p(), 1e-6f}, a.W1 = W1p.get(), a.b1 = db1.p(), a.W2 = W2p.get(), a.b2 = db2.p();
    a.out = dx.p(), a.M = M, a.D = D, a.I = I;
    be.mlp(a);
    std::vector<float> ln(x.size()), want = x;
    cpu::ref_layernorm({x.data(), g.data(), b.data(), ln.data(), M, D, 1e-6f});
    cpu::MlpArgs r;
    r.a = ln.data(), r.b1 = b1.data(), r.b2 = b2.data(), r.out = want.data(), r.M = M, r.D = D, r.I = I;
    cpu::ref_mlp(r, W1.data(), W2.data());
    compare(t, "mlp (LN in front) " + std::to_string(M) + "x" + std::to_string(D) + "x" + std::to_string(I), dx.get(be),
            want, 2);
  }
}

void test_embedding_ops(const Target& t) {
  Backend& be = *t.be;
  int seed = 400;
  for (auto [B, C, H, W, p] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 3, 224, 224, 16},
                               {2, 3, 37, 50, 8},
                               {3, 1, 9, 9, 3}}) {
    auto x = as_stored(be, random_vec(static_cast<size_t>(B * C * H * W), seed++));
    const int64_t N = (H / p) * (W / p), K = C * p * p;
    OnDevice dx(be, x), dp(be, static_cast<size_t>(B * N * K));
    be.patchify({dx.p(), dp.p(), B, C, H, W, p});
    std::vector<float> want(dp.n);
    cpu::ref_patchify({x.data(), want.data(), B, C, H, W, p});
    compare(t,
            "patchify " + std::to_string(B) + "x" + std::to_string(C) + "x" + std::to_string(H) + "x" +
                std::to_string(W) + " p" + std::to_string(p),
            dp.get(be), want, 0);  // a copy: exact
  }
  for (auto [B, N, D, masked] :
       {std::tuple<int64_t, int64_t, int64_t, bool>{1, 196, 384, false}, {3, 5, 33, true}, {2, 16, 32, true}}) {
    auto pe = as_stored(be, random_vec(static_cast<size_t>(B * N * D), seed++));
    auto cls = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    auto pos = as_stored(be, random_vec(static_cast<size_t>((N + 1) * D), seed++));
    auto mt = as_stored(be, random_vec(static_cast<size_t>(D), seed++));
    std::vector<uint8_t> mask(static_cast<size_t>(B * N));
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i * 7 + 3) % 5 == 0;
    OnDevice dpe(be, pe), dcls(be, cls), dpos(be, pos), dmt(be, mt), dt(be, static_cast<size_t>(B * (N + 1) * D));
    be.embed_tokens({dpe.p(), dcls.p(), dpos.p(), dmt.p(), masked ? mask.data() : nullptr, dt.p(), B, N, D});
    std::vector<float> want(dt.n);
    cpu::ref_embed_tokens(
        {pe.data(), cls.data(), pos.data(), mt.data(), masked ? mask.data() : nullptr, want.data(), B, N, D});
    compare(t,
            "embed_tokens B" + std::to_string(B) + " N" + std::to_string(N) + " D" + std::to_string(D) +
                (masked ? " +mask" : ""),
            dt.get(be), want);
  }
  // copy_rows with strides (the pooling and classifier gathers use it).
  auto src = as_stored(be, random_vec(7 * 40, seed++));
  OnDevice ds(be, src), dd(be, static_cast<size_t>(7 * 13));
  be.copy_rows(dd.p(), 13, ds.p() + 3, 40, 7, 13);
  std::vector<float> want(dd.n);
  for (int r = 0; r < 7; ++r)
    for (int i = 0; i < 13; ++i) want[static_cast<size_t>(r * 13 + i)] = src[static_cast<size_t>(r * 40 + 3 + i)];
  compare(t, "copy_rows 7x13 from stride 40", dd.get(be), want, 0);
}

// The embed path's ops: patchify_pixels (uint8 HWC → normalized patches) and pool_rows.
void test_embed_ops(const Target& t) {
  Backend& be = *t.be;
  uint64_t seed = 500;
  PixelNorm hf;  // ViTImageProcessor's defaults
  PixelNorm half = hf;
  half.rescale_factor = 1.0 / 127.5, half.mean[0] = half.mean[1] = half.mean[2] = 0.5f;
  half.std[0] = half.std[1] = half.std[2] = 0.5f;
  PixelNorm no_rescale = hf, no_normalize = hf, raw = hf;
  no_rescale.do_rescale = false, no_normalize.do_normalize = false, raw.do_rescale = raw.do_normalize = false;
  struct Case {
    int64_t B, H, W, p;
    PixelNorm norm;
    const char* what;
  };
  const Case cases[] = {{1, 224, 224, 16, hf, "hf"},
                        {3, 37, 50, 8, half, "0.5/0.5"},
                        {2, 9, 9, 3, no_rescale, "no rescale"},
                        {1, 33, 17, 16, no_normalize, "no normalize"},
                        {3, 20, 21, 4, raw, "raw levels"}};
  for (const Case& c : cases) {
    std::vector<uint8_t> px(static_cast<size_t>(c.B * c.H * c.W * 3));
    Rng rng(seed++);
    for (auto& v : px) v = static_cast<uint8_t>(rng.next() >> 56);
    px[0] = 0, px[1] = 255;  // both ends of the range
    const int64_t N = (c.H / c.p) * (c.W / c.p), K = 3 * c.p * c.p;
    OnDevice dp(be, static_cast<size_t>(c.B * N * K));
    be.patchify_pixels({px.data(), dp.p(), c.B, c.H, c.W, c.p, c.norm});
    std::vector<float> want(dp.n);
    cpu::ref_patchify_pixels({px.data(), want.data(), c.B, c.H, c.W, c.p, c.norm});
    const std::string name = "patchify_pixels " + std::to_string(c.B) + "x" + std::to_string(c.H) + "x" +
                             std::to_string(c.W) + " p" + std::to_string(c.p) + " " + c.what;
    compare(t, name, dp.get(be), as_stored(be, want), 0);  // the same float32 operations: exact
    {  // the same bytes already in the backend's memory (a recorded embed): the same patches
      DeviceArray on_device(be, (px.size() + storage_bytes(dp.a.get().type()) - 1) / storage_bytes(dp.a.get().type()));
      be.upload_bytes(on_device.get(), px.data(), px.size());
      OnDevice dq(be, dp.n);
      PatchifyPixelsArgs a{nullptr, dq.p(), c.B, c.H, c.W, c.p, c.norm};
      a.device_pixels = on_device.get();
      be.patchify_pixels(a);
      compare(t, name + " (pixels in device memory)", dq.get(be), as_stored(be, want), 0);
    }
    // ... and exactly the float32 preprocessing (normalize_to_chw) followed by patchify.
    PreprocessConfig cfg;
    cfg.do_rescale = c.norm.do_rescale, cfg.rescale_factor = c.norm.rescale_factor;
    cfg.do_normalize = c.norm.do_normalize;
    for (int k = 0; k < 3; ++k) cfg.mean[k] = c.norm.mean[k], cfg.std[k] = c.norm.std[k];
    std::vector<float> chw(static_cast<size_t>(c.B * 3 * c.H * c.W)), via_float(want.size());
    for (int64_t b = 0; b < c.B; ++b)
      normalize_to_chw(px.data() + b * c.H * c.W * 3, c.W, c.H, cfg, chw.data() + b * 3 * c.H * c.W);
    cpu::ref_patchify({chw.data(), via_float.data(), c.B, 3, c.H, c.W, c.p});
    check(std::memcmp(want.data(), via_float.data(), want.size() * sizeof(float)) == 0,
          name + ": reference equals normalize_to_chw + patchify, bit for bit");
  }
  // pool_rows: the CLS row (n = 1), the patch rows' mean, with and without normalize; odd D,
  // T = 197 / 50 / 257 (an interpolated grid), a zero row (the 1e-12 floor).
  struct Pool {
    int64_t B, T, D, t0, n;
  };
  for (const Pool& c : {Pool{1, 197, 384, 0, 1}, Pool{3, 197, 33, 1, 196}, Pool{3, 50, 385, 1, 49},
                        Pool{2, 257, 64, 1, 256}, Pool{3, 1, 7, 0, 1}}) {
    for (bool normalize : {false, true}) {
      auto x = as_stored(be, random_vec(static_cast<size_t>(c.B * c.T * c.D), seed++, 3.0f));
      if (c.T == 1) std::fill(x.begin(), x.begin() + c.D, 0.0f);  // image 0 all zeros
      OnDevice dx(be, x), dout(be, static_cast<size_t>(c.B * c.D));
      be.pool_rows({dx.p(), dout.p(), c.B, c.T, c.D, c.t0, c.n, normalize});
      std::vector<float> want(dout.n);
      cpu::ref_pool_rows({x.data(), want.data(), c.B, c.T, c.D, c.t0, c.n, normalize});
      // The CPU sums in the reference's order (bit for bit); a GPU's norm is a tree sum, then the
      // values round to its storage type.
      const bool cpu = t.be->uses_host_memory();
      compare(t,
              "pool_rows B" + std::to_string(c.B) + " T" + std::to_string(c.T) + " D" + std::to_string(c.D) + " rows " +
                  std::to_string(c.t0) + "+" + std::to_string(c.n) + (normalize ? " +normalize" : ""),
              dout.get(be), cpu ? want : as_stored(be, want), cpu ? 0 : 1);
    }
  }
}

std::vector<Target> targets() {
  std::vector<Target> out;
  // The CPU path VITMSN_CPU_ISA picks (vitest runs each supported one, and bf16 with AMX on and
  // off): float32 weights, and bfloat16 weights (GEMM inputs rounded to bf16, float32 sums).
  // The names carry the path's summary ("kernels: avx512 (bfloat16 via AMX tiles)"), so the log
  // shows which bf16 kernel ran: test/native.test.ts checks AMX is used, or not, as asked.
  std::shared_ptr<Backend> cpu(make_cpu_backend(2));
  const std::vector<BackendInfo> infos = list_backends();
  const std::string kernels = infos.empty() ? "" : " [" + infos[0].detail + "]";
  out.push_back({"cpu" + kernels, cpu, 1e-5});
  out.push_back({"cpu bf16 weights" + kernels, cpu, 1.2e-2, WeightDtype::kBFloat16});
  // int8 weights (per channel) and uint8 activations (per row) on uniform random data: a quantisation
  // step of range/255 and max/127 per operand; measured at most 4.8e-3 on the GEMMs and 1.1e-2 on the
  // MLP (whose bound is twice this one), on every CPU path.
  out.push_back({"cpu int8 weights" + kernels, cpu, 2e-2, WeightDtype::kInt8});
  for (const BackendInfo& b : infos) {
    if (b.name != "cuda" || !b.available) continue;
    // Storage rounding per element: 2^-24 (fp32), 2^-11 (fp16), 2^-8 (bf16); the op's own error is
    // within a few of those.
    for (auto [dtype, tol] : {std::pair<const char*, double>{"float32", 1e-5}, {"float16", 4e-3}, {"bfloat16", 3e-2}}) {
      try {
        out.push_back({std::string("cuda ") + dtype, acquire_backend("cuda:0", 0, dtype), tol});
      } catch (const Error& e) {
        check(false, std::string("cuda ") + dtype + " backend: " + e.what());
      }
    }
  }
  return out;
}

}  // namespace

int main() {
  for (const Target& t : targets()) {
    std::printf("backend %s\n", t.name.c_str());
    try {
      test_transfers(t);
      test_gemm(t);
      test_layernorm(t);
      test_attention(t);
      test_fused(t);
      test_embedding_ops(t);
      test_embed_ops(t);
    } catch (const std::exception& e) {
      check(false, t.name + ": threw " + e.what());
    }
  }
  return finish();
}
