// The CUDA backend (make_cuda_backend in backend/factories.h): activations and weights live on one
// GPU in the chosen storage type (float32, float16 or bfloat16; arithmetic is float32 everywhere),
// GEMMs run on cuBLASLt (opened at run time), the other ops on this folder's kernels.
#include "backend/factories.h"
#include "common/knobs.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "backend/device_array.h"
#include "cuda/cublaslt_loader.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_probe.h"
#include "cuda/graph_arena.h"
#include "cuda/graph_cache.h"
#include "cuda/jpeg_device.h"
#include "cuda/kernels.h"
#include "cuda/lt_gemm.h"
#include "cuda/op_profile.h"
#include "cuda/pinned_staging.h"
#include "cuda/recorded_forward.h"

namespace vitmsn {
namespace {

template <typename T>
constexpr StorageType storage_type() {
  if constexpr (std::is_same_v<T, float>)
    return StorageType::kFloat32;
  else if constexpr (std::is_same_v<T, __half>)
    return StorageType::kFloat16;
  else
    return StorageType::kBFloat16;
}

template <typename T>
constexpr int lt_type() {
  if constexpr (std::is_same_v<T, float>)
    return lt::kR32F;
  else if constexpr (std::is_same_v<T, __half>)
    return lt::kR16F;
  else
    return lt::kR16BF;
}

// One lock per GPU, shared by every backend on it (one per dtype). Every CUDA call that allocates,
// frees or enqueues on a device holds it, and so does a graph capture from start to end: cudaFree
// synchronises the device, and another thread's free in the middle of a capture would invalidate
// it. Never destroyed (backends may outlive static destruction at process exit).
std::recursive_mutex& device_lock(int device) {
  static std::mutex mu;
  static auto* locks = new std::map<int, std::unique_ptr<std::recursive_mutex>>();
  std::lock_guard<std::mutex> lock(mu);
  auto& l = (*locks)[device];
  if (!l) l = std::make_unique<std::recursive_mutex>();
  return *l;
}

// A Linear weight resident on the GPU in the backend's storage type (the CUDA "packing" is just the
// dtype conversion; cuBLASLt reads the [N, K] layout as it is). Freed under the device lock, like
// every other device buffer, whichever thread drops the model.
class CudaLinear final : public PreparedLinear {
 public:
  CudaLinear(int device, void* d) : device_(device), d_(d) {}
  ~CudaLinear() override {
    std::lock_guard<std::recursive_mutex> lock(device_lock(device_));
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
  CudaBackend(int device, std::string dtype, HostCopy host_copy)
      : mu_(device_lock(device)), device_(device), dtype_(std::move(dtype)) {
    Lock lock(mu_);
    cuda::check(cudaSetDevice(device_), "cudaSetDevice");
    cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    if (cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking) != cudaSuccess) {
      cudaGetLastError();
      cudaStreamDestroy(stream_);
      throw Error(codes::kInternal, "CUDA cudaStreamCreate (copy stream) failed");
    }
    try {
      // Activations come from a stream-ordered pool that keeps what it was given (release threshold
      // = all): after the first forward of a shape, alloc/release cost no driver call and never
      // synchronise — the "arena reused across calls" without a second allocator.
      cudaMemPoolProps props{};
      props.allocType = cudaMemAllocationTypePinned;
      props.location.type = cudaMemLocationTypeDevice;
      props.location.id = device_;
      cuda::check(cudaMemPoolCreate(&pool_, &props), "cudaMemPoolCreate");
      uint64_t keep = UINT64_MAX;
      cuda::check(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep), "pool release threshold");
      gemm_ = std::make_unique<cuda::LtGemm>(*cublaslt().api, lt_type<T>(), stream_);
      cudaDeviceProp prop{};
      cuda::check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
      cuda::AttentionCaps caps;
      const std::string attention = knobs::choice(knobs::Knob::kCudaAttention);
      caps.tensor_cores = prop.major >= 8 && !std::is_same_v<T, float> && attention != "simt";
      caps.kernel = attention == "tile"   ? cuda::AttentionKernel::kTile
                    : attention == "head" ? cuda::AttentionKernel::kHead
                                          : cuda::AttentionKernel::kAuto;
      caps.max_smem = static_cast<int>(prop.sharedMemPerBlockOptin);
      caps.sm_count = prop.multiProcessorCount;
      if (const long w = knobs::integer(knobs::Knob::kCudaAttentionWarps))
        caps.warps = static_cast<int>(w);  // for measurements
      if (!cuda::prepare_attention<T>(caps)) caps.tensor_cores = false;
      cudaGetLastError();
      attn_caps_ = caps;
      // cuBLASLt's GELU epilogue is the tanh form: in fp16/bf16 the difference is below the
      // format's rounding (docs/cuda.md, "GELU"), in fp32 it is not. VITMSN_CUDA_GELU=exact|epilogue overrides.
      gelu_epilogue_ = !std::is_same_v<T, float>;
      const std::string gelu = knobs::choice(knobs::Knob::kCudaGelu);
      if (gelu != "auto") gelu_epilogue_ = gelu == "epilogue";
      graphs_enabled_ = knobs::flag(knobs::Knob::kCudaGraphs);
      pipeline_enabled_ = knobs::flag(knobs::Knob::kCudaPipeline);
      verbose_ = knobs::flag(knobs::Knob::kCudaVerbose);
      if (verbose_) cuda::check(cudaEventCreate(&ev_[0]), "event"), cuda::check(cudaEventCreate(&ev_[1]), "event");
      if (knobs::flag(knobs::Knob::kCudaProfile))
        profile_ = std::make_unique<cuda::OpProfile>(stream_), graphs_enabled_ = false;
      staged_ = std::make_unique<cuda::PinnedStaging>(stream_, copy_, std::move(host_copy),
                                                      knobs::flag(knobs::Knob::kCudaPinnedStaging));
    } catch (...) {
      gemm_.reset();
      staged_.reset();
      if (pool_) cudaMemPoolDestroy(pool_);
      cudaStreamDestroy(copy_);
      cudaStreamDestroy(stream_);
      throw;
    }
  }
  ~CudaBackend() override {
    Lock lock(mu_);
    if (verbose_) std::fprintf(stderr, "[vitmsn cuda] %s %s\n", name().c_str(), graphs_.summary().c_str());
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    graphs_.clear();
    jpeg_.reset();
    profile_.reset();
    gemm_.reset();
    staged_.reset();  // waits for its last transfers, frees the pinned slots
    cudaStreamSynchronize(copy_);
    for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
    for (Landing& l : landing_) {
      cudaFree(l.p);
      if (l.landed) cudaEventDestroy(l.landed);
      if (l.free) cudaEventDestroy(l.free);
    }
    cudaFree(staging_);
    cudaFree(d_mask_);
    cudaStreamSynchronize(stream_);
    cudaMemPoolDestroy(pool_);  // gives the pool's memory back to the device
    if (ev_[0]) cudaEventDestroy(ev_[0]);
    if (ev_[1]) cudaEventDestroy(ev_[1]);
    cudaStreamDestroy(copy_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda:" + std::to_string(device_) + " " + dtype_; }
  size_t available_bytes() const override {
    // No device lock: these queries neither allocate nor synchronise, and the caller may be the
    // event loop's thread (a request's checks), which must not wait for another thread's forward.
    if (cudaSetDevice(device_) != cudaSuccess) return cudaGetLastError(), SIZE_MAX;
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) return cudaGetLastError(), SIZE_MAX;
    // What the activation pool holds but no live buffer uses is there for the next forward too.
    uint64_t reserved = 0, used = 0;
    if (cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &reserved) != cudaSuccess ||
        cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, &used) != cudaSuccess) {
      cudaGetLastError();
      reserved = used = 0;
    }
    return free + static_cast<size_t>(reserved > used ? reserved - used : 0);
  }
  bool uses_host_memory() const override { return false; }

  DevicePtr alloc(size_t n) override {
    Lock lock(mu_);
    enter();
    if (n > (size_t{1} << 40))
      throw Error(codes::kOutOfMemory, "CUDA allocation of " + std::to_string(n) + " elements refused");
    const size_t bytes = round_up(std::max<size_t>(n, 1) * sizeof(T));
    if (arena_) return {arena_.at(arena_.take(bytes)), storage_type<T>()};  // recording: no allocation in a graph
    void* p = nullptr;
    cuda::check(cudaMallocFromPoolAsync(&p, bytes, pool_, stream_), "cudaMallocAsync");
    if (counting_) counted_[p] = count_.take(bytes);
    return {p, storage_type<T>()};
  }
  void release(DevicePtr block) noexcept override {
    void* p = block.get();
    if (!p) return;
    Lock lock(mu_);
    if (arena_.contains(p)) {  // the arena lives as long as its graph; the piece serves again
      arena_.give_back(arena_.offset_of(p));
      return;
    }
    if (counting_) {
      auto it = counted_.find(p);
      if (it != counted_.end()) count_.give_back(it->second), counted_.erase(it);
    }
    cudaSetDevice(device_);
    cudaFreeAsync(p, stream_);  // stream-ordered: work already queued that reads p finishes first
  }
  void upload(DevicePtr dst_ptr, const float* host, size_t n) override {
    T* dst = t(dst_ptr);
    Lock lock(mu_);
    enter();
    Profiled p(profile_.get(), "upload (host→device)");
    if constexpr (std::is_same_v<T, float>) {
      staged_->upload(dst, host, n * sizeof(float));
    } else {
      float* s = staging(n);
      staged_->upload(s, host, n * sizeof(float));
      cuda::convert_from_f32<T>(s, dst, static_cast<int64_t>(n), stream_);
      cuda::check_launch("convert_from_f32");
    }
  }
  // The wait for the device's work runs without the device lock, so that other threads (another
  // batch of the same model, another model) queue their work meanwhile, and the copy itself runs
  // on the copy stream, so it does not wait behind what they queued. (A caller that holds the lock
  // already, as run_measured does, keeps it: then nothing overlaps, as before.)
  void download(float* host, DevicePtr src, size_t n) override {
    if (n == 0) return;
    std::unique_lock<std::recursive_mutex> lock(mu_);
    enter();
    // float32 values to copy: src itself, or its conversion into a buffer of this call (never the
    // shared staging_, which another thread's upload may overwrite while this one waits).
    DeviceArray converted;
    const void* from = src.get();
    if constexpr (!std::is_same_v<T, float>) {
      converted = DeviceArray(*this, (n * sizeof(float) + sizeof(T) - 1) / sizeof(T));
      cuda::convert_to_f32<T>(t(src), static_cast<float*>(converted.get().get()), static_cast<int64_t>(n), stream_);
      cuda::check_launch("convert_to_f32");
      from = converted.get().get();
    }
    cudaEvent_t ready = take_event();
    try {
      cuda::check(cudaEventRecord(ready, stream_), "download event");
      lock.unlock();
      cuda::check(cudaEventSynchronize(ready), "download wait");
      lock.lock();
      enter();
      Profiled p(profile_.get(), "download (device→host)");
      staged_->download(host, from, n * sizeof(float));  // on the copy stream; returns with the bytes in `host`
    } catch (...) {
      if (!lock.owns_lock()) lock.lock();
      give_event(ready);
      throw;
    }
    give_event(ready);
    if (profile_) profile_->collect();
  }
  void upload_bytes(DevicePtr dst, const void* host, size_t bytes) override {
    Lock lock(mu_);
    enter();
    Profiled p(profile_.get(), "upload (host→device)");
    staged_->upload(dst.get(), host, bytes);
  }
  void download_bytes(void* host, DevicePtr src, size_t bytes) override {
    Lock lock(mu_);
    enter();
    cuda::check(cudaStreamSynchronize(stream_), "download_bytes wait");
    cuda::check(cudaMemcpy(host, src.get(), bytes, cudaMemcpyDeviceToHost), "download_bytes");
  }
  void copy_rows(DevicePtr dst, int64_t dst_ld, DevicePtr src, int64_t src_ld, int64_t rows, int64_t n) override {
    Lock lock(mu_);
    enter();
    cuda::check(cudaMemcpy2DAsync(t(dst), dst_ld * sizeof(T), t(src), src_ld * sizeof(T), n * sizeof(T), rows,
                                  cudaMemcpyDeviceToDevice, stream_),
                "copy_rows");
  }

  std::unique_ptr<PreparedLinear> prepare_linear(const float* host_w, int64_t N, int64_t K,
                                                 WeightDtype dtype) override {
    const size_t n = static_cast<size_t>(N * K);
    Lock lock(mu_);
    enter();
    void* raw = nullptr;  // weights live outside the activation pool, in T like every buffer here
    cuda::check(cudaMalloc(&raw, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc(weights)");
    try {
      upload(DevicePtr(raw, storage_type<T>()), host_w, n);
      cuda::check(cudaStreamSynchronize(stream_), "weights upload");
    } catch (...) {
      cudaFree(raw);
      throw;
    }
    auto w = std::make_unique<CudaLinear>(device_, raw);
    w->N = N, w->K = K, w->dtype = dtype;  // storage is T whatever dtype asks: the backend's dtype rules
    return w;
  }

  void gemm(const GemmArgs& a) override {
    Lock lock(mu_);
    enter();
    const void* W = a.Wp ? static_cast<const CudaLinear*>(a.Wp)->data() : a.W.get();
    if (a.epilogue == Epilogue::kGelu && a.residual) {
      throw Error(codes::kInternal, "cuda gemm: GELU with a residual is not supported");
    }
    const bool fused_gelu = a.epilogue == Epilogue::kGelu && gelu_epilogue_;
    Profiled p(profile_.get(), "gemm " + std::to_string(a.N) + "x" + std::to_string(a.K) +
                                   (fused_gelu ? " +gelu" : "") + (a.residual ? " +res" : ""));
    gemm_->run(a.A.get(), a.lda, W, a.bias.get(), a.residual.get(), a.C.get(), a.M, a.N, a.K, fused_gelu);
    if (a.epilogue == Epilogue::kGelu && !fused_gelu) {
      // Exact erf GELU (cuBLASLt's GELU epilogue is the tanh form; see docs/cuda.md).
      Profiled g(profile_.get(), "gelu (exact)");
      cuda::gelu_inplace<T>(t(a.C), a.M * a.N, stream_);
      cuda::check_launch("gelu");
    }
  }
  void layernorm(const LayerNormArgs& a) override {
    Lock lock(mu_);
    enter();
    Profiled p(profile_.get(), "layernorm");
    cuda::layernorm<T>(t(a.x), t(a.gamma), t(a.beta), t(a.y), a.rows, a.D, a.eps, stream_);
    cuda::check_launch("layernorm");
  }
  void attention(const AttentionArgs& a) override {
    Lock lock(mu_);
    enter();
    Profiled p(profile_.get(), a.probs ? "attention (probs)" : "attention");
    if (a.probs) {
      cuda::attention_with_probs<T>(t(a.qkv), t(a.out), t(a.probs), t(a.head_scale), a.B, a.T, a.H, a.Dh, a.scale,
                                    stream_);
    } else if (a.Dh <= cuda::kFlashMaxHeadDim) {
      cuda::attention_flash<T>(t(a.qkv), t(a.out), t(a.head_scale), a.B, a.T, a.H, a.Dh, a.scale, attn_caps_, stream_);
    } else {
      // Head dims beyond the flash kernel's registers: the explicit path with a scratch P.
      DeviceArray scratch(*this, static_cast<size_t>(a.B * a.H * a.T * a.T));
      cuda::attention_with_probs<T>(t(a.qkv), t(a.out), t(scratch.get()), t(a.head_scale), a.B, a.T, a.H, a.Dh, a.scale,
                                    stream_);
    }
    cuda::check_launch("attention");
  }
  void patchify(const PatchifyArgs& a) override {
    Lock lock(mu_);
    enter();
    Profiled p(profile_.get(), "patchify");
    cuda::patchify<T>(t(a.x), t(a.patches), a.B, a.C, a.Himg, a.Wimg, a.p, stream_);
    cuda::check_launch("patchify");
  }
  void embed_tokens(const EmbedTokensArgs& a) override {
    Lock lock(mu_);
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
    Profiled p(profile_.get(), "embed_tokens");
    cuda::embed_tokens<T>(t(a.patch_emb), t(a.cls), t(a.pos), t(a.mask_token), mask, t(a.tokens), a.B, a.N, a.D,
                          stream_);
    cuda::check_launch("embed_tokens");
  }

  void patchify_pixels(const PatchifyPixelsArgs& a) override {
    Lock lock(mu_);
    enter();
    const size_t bytes = static_cast<size_t>(a.B * a.Himg * a.Wimg * 3);
    if (bytes == 0) return;
    if (!a.pixels && !a.device_pixels) throw Error(codes::kInternal, "patchify_pixels: null pixels");
    // The levels cross as bytes (a quarter of the float32 tensor), unless a recording has them on
    // the device already: on the copy stream into a landing buffer (so that with two batches in
    // flight the next one's pixels cross while the device still computes the current one), or, when
    // no landing buffer can be had, on the compute stream into a block of the pool. Either upload
    // returns once the bytes are staged (pinned slots or the driver's): the caller may reuse its buffer.
    DeviceArray staged;
    Landing* landing = nullptr;
    const uint8_t* d_pixels = static_cast<const uint8_t*>(a.device_pixels.get());
    if (!d_pixels) {
      Profiled p(profile_.get(), "upload (uint8 pixels)");
      landing = land(bytes);
      if (landing) {
        cuda::check(cudaStreamWaitEvent(copy_, landing->free, 0), "landing reuse");
        staged_->upload_on(copy_, landing->p, a.pixels, bytes);
        cuda::check(cudaEventRecord(landing->landed, copy_), "landed");
        cuda::check(cudaStreamWaitEvent(stream_, landing->landed, 0), "landed wait");
        d_pixels = static_cast<const uint8_t*>(landing->p);
      } else {
        staged = DeviceArray(*this, (bytes + sizeof(T) - 1) / sizeof(T));
        staged_->upload(staged.get().get(), a.pixels, bytes);
        d_pixels = static_cast<const uint8_t*>(staged.get().get());
      }
    }
    Profiled p(profile_.get(), "patchify_pixels");
    cuda::patchify_pixels<T>(d_pixels, t(a.patches), a.B, a.Himg, a.Wimg, a.p, a.norm, stream_);
    cuda::check_launch("patchify_pixels");
    if (landing) cuda::check(cudaEventRecord(landing->free, stream_), "landing free");
  }
  std::vector<std::pair<int64_t, std::string>> decode_jpegs(const JpegFiles& f, int64_t H, int64_t W,
                                                            DevicePtr dst) override {
    Lock lock(mu_);
    enter();
    if (f.data.size() != f.sizes.size() || !f.taps || H < 1 || W < 1)
      throw Error(codes::kInternal, "decode_jpegs: bad arguments");
    if (!jpeg_) jpeg_ = std::make_unique<cuda::JpegDeviceDecoder>(stream_);  // opens nvJPEG on first use
    Profiled p(profile_.get(), "decode_jpegs (nvJPEG + resize)");
    std::vector<std::pair<int64_t, std::string>> rejected;
    uint8_t* out = static_cast<uint8_t*>(dst.get());
    const size_t per_image = static_cast<size_t>(H * W * 3);
    for (size_t i = 0; i < f.data.size(); ++i) {
      const auto r = jpeg_->decode_resized(f.data[i], f.sizes[i], out + i * per_image, W, H, f.taps);
      if (!r.ok) rejected.emplace_back(static_cast<int64_t>(i), r.why);
    }
    return rejected;
  }
  void pool_rows(const PoolRowsArgs& a) override {
    Lock lock(mu_);
    enter();
    if (a.n < 1 || a.t0 < 0 || a.t0 + a.n > a.T) throw Error(codes::kInternal, "pool_rows: rows out of range");
    Profiled p(profile_.get(), "pool_rows");
    cuda::pool_rows<T>(t(a.x), t(a.out), a.B, a.T, a.D, a.t0, a.n, a.normalize, stream_);
    cuda::check_launch("pool_rows");
  }

  bool run_recorded(const RecordKey& rkey, const RecordedInput& in, float* host_out, size_t n_out,
                    const RecordedBody& body) override {
    // Small batches only: there launches dominate, and a graph pins its activations' memory.
    if (!graphs_enabled_ || in.bytes() / sizeof(float) + n_out > (size_t{16} << 20)) return false;
    Lock lock(mu_);  // held across capture and replay: no other thread's op may slip in
    enter();
    const Graphs::Key key = Graphs::key_of(rkey);
    cuda::RecordedForward* g = graphs_.find(key);
    if (!g) {
      if (graphs_.refused(key)) return false;
      const size_t body_bytes = graphs_.arena_bytes(key);
      if (body_bytes == 0) {
        graphs_.set_arena_bytes(key, run_measured(in, host_out, n_out, body));
        return true;
      }
      g = record(key, in, n_out, body_bytes, body);
      if (!g) return false;
    }
    if (g->in_bytes != in.bytes() || g->n_out != n_out) {  // a key names its sizes: this would be a bug in the key
      throw Error(codes::kInternal, "CUDA graph for '" + rkey.what + "' was recorded for other sizes");
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(g->host_in, in.host, in.bytes());
    if (verbose_) cudaEventRecord(ev_[0], stream_);
    cuda::check(cudaGraphLaunch(g->exec, stream_), "cudaGraphLaunch");
    if (verbose_) cudaEventRecord(ev_[1], stream_);
    cuda::check(cudaStreamSynchronize(stream_), "graph sync");
    std::memcpy(host_out, g->host_out, n_out * sizeof(float));
    graphs_.replays++;
    if (verbose_) {  // device time of the replay vs the whole call (host copies included)
      float ms = 0;
      if (cudaEventElapsedTime(&ms, ev_[0], ev_[1]) == cudaSuccess) graphs_.device_ms += ms;
      graphs_.host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    return true;
  }

  // Parts of 64 images from batch 128 on: per image ViT-B/16 runs ~5% slower at 64 than at 256
  // (transformers' SDPA on an H100: 9.6k vs 10.1k img/s), while a whole batch-256 forward's float32
  // transfers (154 MB in, 155 MB out) take about as long as its compute and otherwise do not overlap it.
  int64_t pipeline_part_images(int64_t B) const override { return pipeline_enabled_ && B >= 128 ? 64 : 0; }
  std::unique_ptr<PipelinedIo> pipelined_io(size_t max_in, size_t max_out) override {
    if (!pipeline_enabled_) return nullptr;
    return std::make_unique<Pipeline>(*this, max_in, max_out);
  }

  void forget_recorded(uint64_t owner) noexcept override {
    Lock lock(mu_);
    cudaSetDevice(device_);
    graphs_.forget(owner);  // no replay of this owner runs: its model is being destroyed
  }

 private:
  using Lock = std::lock_guard<std::recursive_mutex>;
  using Graphs = cuda::GraphCache<cuda::RecordedForward>;

  // A pipelined forward's transfers (Backend::PipelinedIo). Inputs cross on the copy stream while
  // the compute stream runs the previous part; the compute stream waits for them with an event.
  // 16-bit storage lands them as float32 in one of two buffers of the session and converts on the
  // compute stream (the copy stream waits until that buffer's last conversion has run before it
  // refills it). Outputs: finish() queues the conversion to float32 (16-bit) into one of two
  // buffers and an event; download() waits for the event without the device lock and copies on
  // the copy stream (not behind the parts queued since). All buffers exist before the session's
  // first copy: the copy stream starts after an event that follows their allocation (and the
  // caller's input buffers) on the compute stream, so it never writes memory the compute stream
  // still uses for something else.
  class Pipeline final : public PipelinedIo {
   public:
    Pipeline(CudaBackend& be, size_t max_in, size_t max_out) : be_(be) {
      Lock lock(be_.mu_);
      be_.enter();
      if constexpr (!std::is_same_v<T, float>) {
        for (int i = 0; i < 2; ++i) {
          land_[i] = DeviceArray(be_, f32_elements(max_in));
          back_[i] = DeviceArray(be_, f32_elements(max_out));
        }
      }
      for (cudaEvent_t* e : {&start_, &landed_[0], &landed_[1], &free_[0], &free_[1], &ready_[0], &ready_[1]}) {
        const cudaError_t r = cudaEventCreateWithFlags(e, cudaEventDisableTiming);
        if (r != cudaSuccess) {
          destroy_events();
          cuda::check(r, "cudaEventCreate");
        }
      }
      try {
        cuda::check(cudaEventRecord(start_, be_.stream_), "pipeline start");
        cuda::check(cudaStreamWaitEvent(be_.copy_, start_, 0), "pipeline start wait");
      } catch (...) {
        destroy_events();
        throw;
      }
    }
    ~Pipeline() override {
      Lock lock(be_.mu_);
      cudaSetDevice(be_.device_);
      cudaStreamSynchronize(be_.copy_);  // no copy into a landing buffer outlives it
      destroy_events();
      cudaGetLastError();
    }
    void upload(int64_t part, DevicePtr dst, const float* host, size_t n) override {
      Lock lock(be_.mu_);
      be_.enter();
      const int i = static_cast<int>(part % 2);
      void* target = dst.get();
      if constexpr (!std::is_same_v<T, float>) {
        target = land_[i].get().get();
        cuda::check(cudaStreamWaitEvent(be_.copy_, free_[i], 0), "pipeline landing reuse");
      }
      be_.staged_->upload_on(be_.copy_, target, host, n * sizeof(float));
      cuda::check(cudaEventRecord(landed_[i], be_.copy_), "pipeline landed");
      cuda::check(cudaStreamWaitEvent(be_.stream_, landed_[i], 0), "pipeline landed wait");
      if constexpr (!std::is_same_v<T, float>) {
        cuda::convert_from_f32<T>(static_cast<const float*>(target), t(dst), static_cast<int64_t>(n), be_.stream_);
        cuda::check_launch("convert_from_f32");
        cuda::check(cudaEventRecord(free_[i], be_.stream_), "pipeline landing free");
      }
    }
    void finish(int64_t part, DevicePtr src, size_t n) override {
      Lock lock(be_.mu_);
      be_.enter();
      const int i = static_cast<int>(part % 2);
      from_[i] = src.get();
      if constexpr (!std::is_same_v<T, float>) {
        auto* f = static_cast<float*>(back_[i].get().get());
        cuda::convert_to_f32<T>(t(src), f, static_cast<int64_t>(n), be_.stream_);
        cuda::check_launch("convert_to_f32");
        from_[i] = f;
      }
      cuda::check(cudaEventRecord(ready_[i], be_.stream_), "pipeline ready");
    }
    void download(int64_t part, size_t offset, float* host, size_t n) override {
      const int i = static_cast<int>(part % 2);
      cuda::check(cudaSetDevice(be_.device_), "cudaSetDevice");
      cuda::check(cudaEventSynchronize(ready_[i]), "pipeline wait");  // without the device lock
      Lock lock(be_.mu_);
      be_.enter();
      be_.staged_->download(host, static_cast<const float*>(from_[i]) + offset, n * sizeof(float));
    }

   private:
    static size_t f32_elements(size_t floats) { return (floats * sizeof(float) + sizeof(T) - 1) / sizeof(T); }
    void destroy_events() {
      for (cudaEvent_t* e : {&start_, &landed_[0], &landed_[1], &free_[0], &free_[1], &ready_[0], &ready_[1]}) {
        if (*e) cudaEventDestroy(*e);
        *e = nullptr;
      }
    }
    CudaBackend& be_;
    DeviceArray land_[2], back_[2];  // float32 landing / output buffers (16-bit storage only)
    cudaEvent_t start_ = nullptr, landed_[2] = {nullptr, nullptr}, free_[2] = {nullptr, nullptr},
                ready_[2] = {nullptr, nullptr};
    const void* from_[2] = {nullptr, nullptr};  // where each output block's float32 values are
  };
  struct Profiled {  // brackets one op when profiling (VITMSN_CUDA_PROFILE=1)
    Profiled(cuda::OpProfile* p, const std::string& what) : p_(p) {
      if (p_) p_->begin(what);
    }
    ~Profiled() {
      if (p_) p_->end();
    }
    cuda::OpProfile* p_;
  };

  // The first call of a shape, run eagerly under the lock, counting the bytes the body allocates.
  size_t run_measured(const RecordedInput& input, float* host_out, size_t n_out, const RecordedBody& body) {
    DeviceArray in(*this, input.float32 ? input.n : (input.n + sizeof(T) - 1) / sizeof(T)), out(*this, n_out);
    if (input.float32)
      upload(in.get(), static_cast<const float*>(input.host), input.n);
    else
      upload_bytes(in.get(), input.host, input.n);
    counting_ = true;
    count_ = {};
    counted_.clear();
    try {
      body(in.get(), out.get());
    } catch (...) {
      counting_ = false;
      throw;
    }
    counting_ = false;
    download(host_out, out.get(), n_out);
    return count_.used();
  }

  // Records pinned-in → device → body → device → pinned-out as one graph over a fresh arena of
  // body_bytes (measured by run_measured) plus the in/out buffers (the input float32 converted to
  // T, or bytes used as they are). Returns null, having changed
  // nothing, when it cannot: the caller runs eagerly. Memory for the recording that cannot be had
  // now is not held against the key (a later call tries again); a failed capture counts towards
  // the key's refusal (GraphCache::kMaxFailures).
  cuda::RecordedForward* record(const Graphs::Key& key, const RecordedInput& input, size_t n_out, size_t body_bytes,
                                const RecordedBody& body) {
    std::unique_ptr<cuda::RecordedForward> g;
    const size_t n_in = input.n, in_bytes = input.bytes();
    // The input as it crosses (float32 values or bytes), the output as float32, and where T is 16-bit
    // their copies in T (a byte input is used as it is).
    const size_t io_bytes = round_up(in_bytes) + round_up(n_out * sizeof(float));
    const size_t t_bytes =
        std::is_same_v<T, float> ? 0 : (input.float32 ? round_up(n_in * sizeof(T)) : 0) + round_up(n_out * sizeof(T));
    const size_t total = io_bytes + t_bytes + body_bytes;
    try {
      g = std::make_unique<cuda::RecordedForward>(in_bytes, n_out);
    } catch (const Error& e) {
      if (verbose_)
        std::fprintf(stderr, "[vitmsn cuda] %s: no pinned buffers, eager: %s\n", key.second.c_str(), e.what());
      return nullptr;
    }
    const cudaError_t arena = cudaMalloc(&g->arena, total);
    if (arena != cudaSuccess) {
      cudaGetLastError();
      g->arena = nullptr;
      if (verbose_)
        std::fprintf(stderr, "[vitmsn cuda] %s: no graph arena (%zu bytes), eager\n", key.second.c_str(), total);
      return nullptr;
    }
    cuda::check(cudaStreamSynchronize(stream_), "sync before capture");
    cuda::check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    arena_ = cuda::GraphArena(g->arena, total);
    bool ok = true;
    std::string why;
    try {
      void* in_raw = arena_.at(arena_.take(round_up(std::max<size_t>(in_bytes, 1))));
      float* out32 = carve_f32(n_out);
      cuda::check(cudaMemcpyAsync(in_raw, g->host_in, in_bytes, cudaMemcpyHostToDevice, stream_), "graph H2D");
      DevicePtr in(in_raw, input.float32 ? StorageType::kFloat32 : storage_type<T>()),
          out(out32, StorageType::kFloat32);
      if constexpr (!std::is_same_v<T, float>) {
        if (input.float32) {
          in = alloc(n_in);
          cuda::convert_from_f32<T>(static_cast<float*>(in_raw), t(in), static_cast<int64_t>(n_in), stream_);
          cuda::check_launch("convert_from_f32");
        }
        out = alloc(n_out);
      }
      body(in, out);
      if constexpr (!std::is_same_v<T, float>) {
        cuda::convert_to_f32<T>(t(out), out32, static_cast<int64_t>(n_out), stream_);
        cuda::check_launch("convert_to_f32");
      }
      cuda::check(cudaMemcpyAsync(g->host_out, out32, n_out * sizeof(float), cudaMemcpyDeviceToHost, stream_),
                  "graph D2H");
    } catch (const std::exception& e) {
      ok = false;
      why = e.what();
    }
    arena_ = {};
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    cudaGetLastError();
    if (ok && end != cudaSuccess) why = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end);
    if (!ok || end != cudaSuccess || !graph) {
      if (graph) cudaGraphDestroy(graph);
      graphs_.failed(key, why);
      if (verbose_) std::fprintf(stderr, "[vitmsn cuda] %s not recorded: %s\n", key.second.c_str(), why.c_str());
      return nullptr;
    }
    g->graph = graph;
    cudaError_t inst = cudaGraphInstantiate(&g->exec, graph, 0);
    if (inst == cudaSuccess) inst = cudaGraphUpload(g->exec, stream_);  // not on the first replay's clock
    if (inst != cudaSuccess) {
      cudaGetLastError();
      graphs_.failed(key, std::string("cudaGraphInstantiate: ") + cudaGetErrorString(inst));
      if (verbose_)
        std::fprintf(stderr, "[vitmsn cuda] %s not instantiated: %s\n", key.second.c_str(), cudaGetErrorString(inst));
      return nullptr;
    }
    graphs_.recorded++;
    return graphs_.insert(key, std::move(g));
  }

  static size_t round_up(size_t bytes) { return (bytes + 255) & ~size_t{255}; }
  float* carve_f32(size_t n) {  // float32 buffer from the recording arena (whatever T is)
    return static_cast<float*>(arena_.at(arena_.take(round_up(std::max<size_t>(n, 1) * sizeof(float)))));
  }

  static T* t(DevicePtr p) { return p.as<T>(); }

  // Two device buffers the embed path's pixels land in, used in turn. Outside the stream-ordered
  // pool: a pool block is only safe in the compute stream's order, and the copy stream writes these
  // while the compute stream may still run earlier work. A buffer is refilled once the patchify that
  // read it has run (event `free`); the patchify waits for its bytes (event `landed`).
  struct Landing {
    void* p = nullptr;
    size_t bytes = 0;
    cudaEvent_t landed = nullptr, free = nullptr;
  };
  // The next landing buffer, grown to `bytes` (growing waits for its last reader); null when its
  // memory or events cannot be had (the caller uploads through the pool instead).
  Landing* land(size_t bytes) {
    Landing& l = landing_[next_landing_];
    next_landing_ ^= 1;
    if (!l.free) {
      if (cudaEventCreateWithFlags(&l.landed, cudaEventDisableTiming) != cudaSuccess ||
          cudaEventCreateWithFlags(&l.free, cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        if (l.landed) cudaEventDestroy(l.landed);
        l.landed = l.free = nullptr;
        return nullptr;
      }
    }
    if (l.bytes < bytes) {
      if (l.p) {
        cuda::check(cudaEventSynchronize(l.free), "landing wait");
        cudaFree(l.p);
        l.p = nullptr, l.bytes = 0;
      }
      if (cudaMalloc(&l.p, bytes) != cudaSuccess) {
        cudaGetLastError();
        l.p = nullptr;
        return nullptr;
      }
      l.bytes = bytes;
    }
    return &l;
  }

  // Events for download's wait, reused (under the device lock).
  cudaEvent_t take_event() {
    if (!free_events_.empty()) {
      cudaEvent_t e = free_events_.back();
      free_events_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    cuda::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    return e;
  }
  void give_event(cudaEvent_t e) { free_events_.push_back(e); }
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

  std::recursive_mutex& mu_;  // device_lock(device_)
  int device_;
  std::string dtype_;
  cudaStream_t stream_ = nullptr;  // every op, and uploads
  cudaStream_t copy_ = nullptr;    // downloads, once the work they wait for is done
  std::vector<cudaEvent_t> free_events_;
  Landing landing_[2];
  int next_landing_ = 0;
  std::unique_ptr<cuda::LtGemm> gemm_;
  float* staging_ = nullptr;
  size_t staging_n_ = 0;
  uint8_t* d_mask_ = nullptr;
  size_t mask_n_ = 0;
  cudaMemPool_t pool_ = nullptr;
  cuda::GraphArena arena_;           // has a block while recording
  bool counting_ = false;            // run_measured: what an arena would need for the same allocations
  cuda::GraphArena count_;           // (no block: measures)
  std::map<void*, size_t> counted_;  // a real allocation while measuring → its piece in count_
  bool gelu_epilogue_ = false;
  bool graphs_enabled_ = true;
  bool pipeline_enabled_ = true;
  bool verbose_ = false;
  cudaEvent_t ev_[2] = {nullptr, nullptr};
  cuda::AttentionCaps attn_caps_;
  Graphs graphs_;
  std::unique_ptr<cuda::OpProfile> profile_;
  std::unique_ptr<cuda::PinnedStaging> staged_;    // big host↔device copies through pinned slots
  std::unique_ptr<cuda::JpegDeviceDecoder> jpeg_;  // GPU decoding, made on first use
};

// Why CUDA cannot be used here, or "" when device `device` and cuBLASLt are usable.
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

}  // namespace

BackendInfo cuda_backend_info() {
  const std::string why = cuda_unavailable_reason(0);
  return {"cuda",
          true,
          why.empty(),
          why.empty() ? std::to_string(probe_cuda().device_count) + " GPU(s); cuBLASLt " + cublaslt().path : why,
          {"float32", "float16", "bfloat16"}};
}

std::unique_ptr<Backend> make_cuda_backend(int device, const std::string& dtype, HostCopy host_copy) {
  const std::string why = cuda_unavailable_reason(device);
  if (!why.empty()) throw Error(codes::kDeviceUnavailable, "cuda:" + std::to_string(device) + " is not usable: " + why);
  if (dtype == "float32") return std::make_unique<CudaBackend<float>>(device, dtype, std::move(host_copy));
  if (dtype == "float16") return std::make_unique<CudaBackend<__half>>(device, dtype, std::move(host_copy));
  if (dtype == "bfloat16") return std::make_unique<CudaBackend<__nv_bfloat16>>(device, dtype, std::move(host_copy));
  throw Error(codes::kUnsupportedDtype, "dtype '" + dtype + "' is not supported on CUDA");
}

}  // namespace vitmsn
