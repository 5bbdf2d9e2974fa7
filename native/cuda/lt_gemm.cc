#include "common/knobs.h"
#include "cuda/lt_gemm.h"

#include <cstdlib>
#include <cstring>

#include "cuda/cuda_check.h"

namespace vitmsn {
namespace cuda {

LtGemm::LtGemm(const lt::Api& api, int data_type, cudaStream_t stream) : api_(api), type_(data_type), stream_(stream) {
  tune_ = knobs::flag(knobs::Knob::kCudaGemmTune);
  check_lt(api_.Create(&handle_), "cublasLtCreate");
  cudaError_t e = cudaMalloc(&workspace_, workspace_bytes_);
  if (e != cudaSuccess) {
    api_.Destroy(handle_);
    check(e, "cudaMalloc(cuBLASLt workspace)");
  }
}

LtGemm::~LtGemm() {
  for (auto& [key, p] : plans_) {
    if (p.a) api_.MatrixLayoutDestroy(p.a);
    if (p.b) api_.MatrixLayoutDestroy(p.b);
    if (p.c) api_.MatrixLayoutDestroy(p.c);
    if (p.desc) api_.MatmulDescDestroy(p.desc);
  }
  cudaFree(workspace_);
  if (handle_) api_.Destroy(handle_);
}

namespace {

// Owns a plan's cuBLASLt objects until it is complete, so a failure half-way leaks nothing and
// never leaves a broken plan in the cache.
struct PlanGuard {
  const lt::Api& api;
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
  lt::MatmulPreference pref = nullptr;
  ~PlanGuard() {
    if (pref) api.MatmulPreferenceDestroy(pref);
    if (a) api.MatrixLayoutDestroy(a);
    if (b) api.MatrixLayoutDestroy(b);
    if (c) api.MatrixLayoutDestroy(c);
    if (desc) api.MatmulDescDestroy(desc);
  }
};

}  // namespace

int LtGemm::fastest(lt::MatmulDesc desc, lt::MatrixLayout la, lt::MatrixLayout lb, lt::MatrixLayout lc,
                    const lt::HeuristicResult* cand, int n, int64_t M, int64_t N, const void* A, const void* W,
                    const void* bias, const void* residual) {
  // Not while a graph is being recorded (nothing may run then), and only with real operands.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone || !A || !W) {
    cudaGetLastError();
    return 0;
  }
  const size_t elem = type_ == lt::kR32F ? 4 : 2;
  void* scratch = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  int best = 0;
  float best_ms = 1e30f;
  if (cudaMallocAsync(&scratch, static_cast<size_t>(M * N) * elem, stream_) == cudaSuccess &&
      cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess) {
    if (bias) api_.MatmulDescSetAttribute(desc, lt::kDescBiasPointer, &bias, sizeof(bias));
    const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
    const void* C = residual ? residual : scratch;
    for (int i = 0; i < n; ++i) {
      if (cand[i].state != lt::kSuccess || cand[i].workspace_size > workspace_bytes_) continue;
      auto once = [&] {
        return api_.Matmul(handle_, desc, &alpha, W, la, A, lb, &beta, C, lc, scratch, lc, &cand[i].algo, workspace_,
                           workspace_bytes_, reinterpret_cast<lt::Stream>(stream_));
      };
      if (once() != lt::kSuccess) continue;  // warm-up; an algo that fails is simply not chosen
      cudaEventRecord(e0, stream_);
      bool ok = true;
      for (int rep = 0; rep < 3 && ok; ++rep) ok = once() == lt::kSuccess;
      cudaEventRecord(e1, stream_);
      float ms = 0;
      if (ok && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess &&
          ms < best_ms) {
        best_ms = ms, best = i;
      }
    }
  }
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
  if (scratch) cudaFreeAsync(scratch, stream_);
  cudaStreamSynchronize(stream_);
  cudaGetLastError();
  return best;
}

LtGemm::Plan& LtGemm::plan(const Key& key, const void* A, const void* W, const void* bias, const void* residual) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [M, N, K, lda, has_bias, has_residual, gelu] = key;
  (void)has_residual;  // part of the key only: beta differs, the layouts do not
  PlanGuard g{api_};
  check_lt(api_.MatmulDescCreate(&g.desc, lt::kCompute32F, lt::kR32F), "MatmulDescCreate");
  const int32_t opT = lt::kOpT, opN = lt::kOpN;
  check_lt(api_.MatmulDescSetAttribute(g.desc, lt::kDescTransA, &opT, sizeof(opT)), "set TRANSA");
  check_lt(api_.MatmulDescSetAttribute(g.desc, lt::kDescTransB, &opN, sizeof(opN)), "set TRANSB");
  const uint32_t epilogue = gelu ? lt::kEpilogueGeluBias : has_bias ? lt::kEpilogueBias : lt::kEpilogueDefault;
  check_lt(api_.MatmulDescSetAttribute(g.desc, lt::kDescEpilogue, &epilogue, sizeof(epilogue)), "set EPILOGUE");
  if (has_bias) {
    const int32_t bias_type = type_;
    check_lt(api_.MatmulDescSetAttribute(g.desc, lt::kDescBiasDataType, &bias_type, sizeof(bias_type)),
             "set BIAS_DATA_TYPE");
  }
  check_lt(api_.MatrixLayoutCreate(&g.a, type_, K, N, K), "layout W");
  check_lt(api_.MatrixLayoutCreate(&g.b, type_, K, M, lda), "layout A");
  check_lt(api_.MatrixLayoutCreate(&g.c, type_, N, M, N), "layout C");
  check_lt(api_.MatmulPreferenceCreate(&g.pref), "MatmulPreferenceCreate");
  const uint64_t ws = workspace_bytes_;
  check_lt(api_.MatmulPreferenceSetAttribute(g.pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof(ws)), "set workspace");
  // The heuristic's first 8 are timed; at small M (batch ≤ 2 at 197 tokens) its first choices tile
  // the output into too few blocks to fill the GPU, so 24 are, to reach split-K and small-tile ones.
  constexpr int kCandidates = 24;
  const int wanted = !tune_ ? 1 : M <= 512 ? kCandidates : 8;
  lt::HeuristicResult results[kCandidates]{};
  int returned = 0;
  check_lt(api_.MatmulAlgoGetHeuristic(handle_, g.desc, g.a, g.b, g.c, g.c, g.pref, wanted, results, &returned),
           "MatmulAlgoGetHeuristic");
  if (returned < 1) check_lt(lt::kNotSupported, "MatmulAlgoGetHeuristic (no algorithm for this shape)");
  Plan p;
  p.desc = g.desc, p.a = g.a, p.b = g.b, p.c = g.c, p.algo = results[0].algo;
  if (returned > 1)
    p.algo = results[fastest(g.desc, g.a, g.b, g.c, results, returned, M, N, A, W, bias, residual)].algo;
  Plan& slot = plans_.emplace(key, p).first->second;
  g.desc = nullptr, g.a = g.b = g.c = nullptr;  // owned by the cache now
  return slot;
}

void LtGemm::run(const void* A, int64_t lda, const void* W, const void* bias, const void* residual, void* C, int64_t M,
                 int64_t N, int64_t K, bool gelu) {
  if (M <= 0 || N <= 0) return;
  if (gelu && (!bias || residual)) check_lt(lt::kNotSupported, "GELU_BIAS epilogue needs a bias and no residual");
  Plan& p = plan(Key{M, N, K, lda, bias != nullptr, residual != nullptr, gelu}, A, W, bias, residual);
  if (bias) {
    check_lt(api_.MatmulDescSetAttribute(p.desc, lt::kDescBiasPointer, &bias, sizeof(bias)), "set BIAS_POINTER");
  }
  const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
  check_lt(api_.Matmul(handle_, p.desc, &alpha, W, p.a, A, p.b, &beta, residual ? residual : C, p.c, C, p.c, &p.algo,
                       workspace_, workspace_bytes_, reinterpret_cast<lt::Stream>(stream_)),
           "cublasLtMatmul");
}

}  // namespace cuda
}  // namespace vitmsn
