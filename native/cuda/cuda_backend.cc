#include "cuda/cuda_backend.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <mutex>
#include <type_traits>

#include "cuda/cublaslt_loader.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_probe.h"
#include "cuda/kernels.h"
#include "cuda/lt_gemm.h"

namespace vitmsn {
namespace {

template <typename T> constexpr int lt_type() {
  if constexpr (std::is_same_v<T, float>) return lt::kR32F;
  else if constexpr (std::is_same_v<T, __half>) return lt::kR16F;
  else return lt::kR16BF;
}

// A Linear weight resident on the GPU in the backend's storage type (the CUDA "packing" is just the
// dtype conversion; cuBLASLt reads the [N, K] layout as it is).
class CudaLinear final : public PreparedLinear {
 public:
  CudaLinear(int device, void* d) : device_(device), d_(d) {}
  ~CudaLinear() override {
    cudaSetDevice(device_);
    cudaFree(d_);
  }
  const void* data() const { return d_; }

 private:
  int device_;
  void* d_;
};

template <typename T>
class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, std::string dtype) : device_(device), dtype_(std::move(dtype)) {
    cuda::check(cudaSetDevice(device_), "cudaSetDevice");
    cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    try {
      gemm_ = std::make_unique<cuda::LtGemm>(*cublaslt().api, lt_type<T>(), stream_);
    } catch (...) {
      cudaStreamDestroy(stream_);
      throw;
    }
  }
  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    gemm_.reset();
    cudaFree(staging_);
    cudaFree(d_mask_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda:" + std::to_string(device_) + " " + dtype_; }

  float* alloc(size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    if (n > (size_t{1} << 40)) throw Error(codes::kOutOfMemory, "CUDA allocation of " + std::to_string(n) + " elements refused");
    void* p = nullptr;
    cuda::check(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
    return static_cast<float*>(p);
  }
  void release(float* p) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    cudaSetDevice(device_);
    cudaFree(p);  // synchronises: no kernel can still be using p
  }
  void upload(float* dst, const float* host, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    if constexpr (std::is_same_v<T, float>) {
      cuda::check(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_), "upload");
    } else {
      float* s = staging(n);
      cuda::check(cudaMemcpyAsync(s, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_), "upload");
      cuda::convert_from_f32<T>(s, t(dst), static_cast<int64_t>(n), stream_);
      cuda::check_launch("convert_from_f32");
    }
  }
  void download(float* host, const float* src, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    const float* from = src;
    if constexpr (!std::is_same_v<T, float>) {
      float* s = staging(n);
      cuda::convert_to_f32<T>(t(src), s, static_cast<int64_t>(n), stream_);
      cuda::check_launch("convert_to_f32");
      from = s;
    }
    cuda::check(cudaMemcpyAsync(host, from, n * sizeof(float), cudaMemcpyDeviceToHost, stream_), "download");
    cuda::check(cudaStreamSynchronize(stream_), "download sync");
  }
  void copy_rows(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows, int64_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    cuda::check(cudaMemcpy2DAsync(dst, dst_ld * sizeof(T), src, src_ld * sizeof(T), n * sizeof(T), rows,
                                  cudaMemcpyDeviceToDevice, stream_),
                "copy_rows");
  }

  std::unique_ptr<PreparedLinear> prepare_linear(const float* host_w, int64_t N, int64_t K, WeightDtype dtype) override {
    const size_t n = static_cast<size_t>(N * K);
    float* d = alloc(n);  // in T, like every buffer of this backend
    try {
      upload(d, host_w, n);
    } catch (...) {
      release(d);
      throw;
    }
    auto w = std::make_unique<CudaLinear>(device_, d);
    w->N = N, w->K = K, w->dtype = dtype;  // storage is T whatever dtype asks: the backend's dtype rules
    return w;
  }

  void gemm(const GemmArgs& a) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    const void* W = a.Wp ? static_cast<const CudaLinear*>(a.Wp)->data() : static_cast<const void*>(a.W);
    if (a.epilogue == Epilogue::kGelu && a.residual) {
      throw Error(codes::kInternal, "cuda gemm: GELU with a residual is not supported");
    }
    gemm_->run(a.A, a.lda, W, a.bias, a.residual, a.C, a.M, a.N, a.K);
    if (a.epilogue == Epilogue::kGelu) {
      // Exact erf GELU (cuBLASLt's GELU epilogue is the tanh form; see cuda-notes.md).
      cuda::gelu_inplace<T>(t(a.C), a.M * a.N, stream_);
      cuda::check_launch("gelu");
    }
  }
  void layernorm(const LayerNormArgs& a) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    cuda::layernorm<T>(t(a.x), t(a.gamma), t(a.beta), t(a.y), a.rows, a.D, a.eps, stream_);
    cuda::check_launch("layernorm");
  }
  void attention(const AttentionArgs& a) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    if (a.probs) {
      cuda::attention_with_probs<T>(t(a.qkv), t(a.out), t(a.probs), t(a.head_scale), a.B, a.T, a.H, a.Dh, a.scale, stream_);
    } else if (a.Dh <= cuda::kFlashMaxHeadDim) {
      cuda::attention_flash<T>(t(a.qkv), t(a.out), t(a.head_scale), a.B, a.T, a.H, a.Dh, a.scale, stream_);
    } else {
      // Head dims beyond the flash kernel's registers: the explicit path with a scratch P.
      void* p = nullptr;
      cuda::check(cudaMallocAsync(&p, static_cast<size_t>(a.B * a.H * a.T * a.T) * sizeof(T), stream_), "attention scratch");
      cuda::attention_with_probs<T>(t(a.qkv), t(a.out), static_cast<T*>(p), t(a.head_scale), a.B, a.T, a.H, a.Dh, a.scale,
                                    stream_);
      cudaFreeAsync(p, stream_);
    }
    cuda::check_launch("attention");
  }
  void patchify(const PatchifyArgs& a) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    cuda::patchify<T>(t(a.x), t(a.patches), a.B, a.C, a.Himg, a.Wimg, a.p, stream_);
    cuda::check_launch("patchify");
  }
  void embed_tokens(const EmbedTokensArgs& a) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter();
    const uint8_t* mask = nullptr;
    if (a.mask) {  // the mask arrives as a host array (tiny): stage it
      const size_t n = static_cast<size_t>(a.B * a.N);
      if (n > mask_n_) {
        cudaFree(d_mask_);
        d_mask_ = nullptr;
        mask_n_ = 0;
        cuda::check(cudaMalloc(reinterpret_cast<void**>(&d_mask_), n), "cudaMalloc(mask)");
        mask_n_ = n;
      }
      cuda::check(cudaMemcpyAsync(d_mask_, a.mask, n, cudaMemcpyHostToDevice, stream_), "mask upload");
      mask = d_mask_;
    }
    cuda::embed_tokens<T>(t(a.patch_emb), t(a.cls), t(a.pos), t(a.mask_token), mask, t(a.tokens), a.B, a.N, a.D, stream_);
    cuda::check_launch("embed_tokens");
  }

 private:
  static T* t(float* p) { return reinterpret_cast<T*>(p); }
  static const T* t(const float* p) { return reinterpret_cast<const T*>(p); }
  void enter() { cuda::check(cudaSetDevice(device_), "cudaSetDevice"); }
  float* staging(size_t n) {  // float32 device scratch for dtype conversions; grows, never shrinks
    if (n > staging_n_) {
      cudaFree(staging_);  // synchronises with work still reading the old buffer
      staging_ = nullptr;
      staging_n_ = 0;
      cuda::check(cudaMalloc(reinterpret_cast<void**>(&staging_), n * sizeof(float)), "cudaMalloc(staging)");
      staging_n_ = n;
    }
    return staging_;
  }

  std::mutex mu_;
  int device_;
  std::string dtype_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::LtGemm> gemm_;
  float* staging_ = nullptr;
  size_t staging_n_ = 0;
  uint8_t* d_mask_ = nullptr;
  size_t mask_n_ = 0;
};

}  // namespace

std::string cuda_unavailable_reason(int device) {
  CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) return probe.reason;
  if (device < 0 || device >= probe.device_count) {
    return "cuda:" + std::to_string(device) + " does not exist (" + std::to_string(probe.device_count) + " GPU(s))";
  }
  const CublasLtLibrary& lib = cublaslt();
  if (!lib.api) return lib.reason;
  return "";
}

std::unique_ptr<Backend> make_cuda_backend(int device, const std::string& dtype) {
  const std::string why = cuda_unavailable_reason(device);
  if (!why.empty()) throw Error(codes::kDeviceUnavailable, "cuda:" + std::to_string(device) + " is not usable: " + why);
  if (dtype == "float32") return std::make_unique<CudaBackend<float>>(device, dtype);
  if (dtype == "float16") return std::make_unique<CudaBackend<__half>>(device, dtype);
  if (dtype == "bfloat16") return std::make_unique<CudaBackend<__nv_bfloat16>>(device, dtype);
  throw Error(codes::kUnsupportedDtype, "dtype '" + dtype + "' is not supported on CUDA");
}

}  // namespace vitmsn
