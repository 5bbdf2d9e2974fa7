// The CPU backend (make_cpu_backend in backend/factories.h): "device" memory is 64-byte-aligned
// host memory, and every op runs its kernel (gemm.h, layernorm.h, attention.h, …) on a persistent
// thread pool.
#include "backend/factories.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backend/device_array.h"
#include "common/error.h"
#include "common/host_memory.h"
#include "common/knobs.h"
#include "cpu/attention.h"
#include "cpu/cpu_features.h"
#include "cpu/cpu_topology.h"
#include "cpu/embed_tokens.h"
#include "cpu/gemm.h"
#include "cpu/layernorm.h"
#include "cpu/mlp.h"
#include "cpu/op_profile.h"
#include "cpu/packed_linear.h"
#include "cpu/patchify.h"
#include "cpu/pool_rows.h"
#include "cpu/qkv_attention.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace {

// 64 bytes: one cache line, and the widest vector (AVX-512) a later kernel may load aligned.
constexpr size_t kAlign = 64;
// 256 TiB: more than a 64-bit process's address space can map (47-bit user space on x86-64 and
// arm64 Linux), so any larger request is a bug or a hostile input, not a big model.
constexpr uint64_t kMaxBytes = uint64_t(1) << 48;

// This backend's memory is host memory: a DevicePtr of it is a float* (StorageType::kFloat32).
float* host(DevicePtr p) { return p.as<float>(); }
// An op's arguments as the CPU kernels take them (cpu/op_args.h).
template <class Args>
auto on_host(const Args& a) {
  return a.template map<const float*, float*>(host);
}

// The unfused ops' intermediate buffers (cpu::OpBuffers): blocks of the backend's own, kept in its
// cache between forwards, given back when the op returns.
class Buffers final : public cpu::OpBuffers {
 public:
  explicit Buffers(Backend& be) : be_(be) {}
  float* get(size_t floats) override { return host(held_.emplace_back(be_, floats).get()); }

 private:
  Backend& be_;
  std::vector<DeviceArray> held_;
};

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

cpu::Isa isa_with_knobs_checked() {
  cpu::amx_enabled();  // VITMSN_CPU_AMX, read once and kept
  return cpu::default_isa();
}

class CpuBackend final : public Backend {
 public:
  // The ISA and every other CPU knob are read before any thread starts, so a refused value fails
  // the load cleanly instead of surfacing inside a worker.
  explicit CpuBackend(int threads) : isa_(isa_with_knobs_checked()), pool_(resolve_threads(threads)) {}

  std::string name() const override { return "cpu"; }
  size_t available_bytes() const override { return host_available_bytes(); }
  bool uses_host_memory() const override { return true; }
  // bf16 and int8: about 8 images of 197 tokens (VITMSN_CPU_LAYER_ROWS). bench/layer-groups.mjs on
  // 2 cores: 1.09–1.64× faster per image than one pass at batch 32–64 (ViT-S/16 bf16 b64 37.3 → 22.8
  // ms/image); larger groups spill the MLP's hidden activations (rows × 4·D) to memory. float32:
  // none, it gained nothing, and its fused MLP picks row blocks or hidden slices by the row count
  // (another summation order for a small last group).
  int64_t layer_rows(WeightDtype dtype) const override { return dtype == WeightDtype::kFloat32 ? 0 : layer_rows_; }
  size_t cached_bytes() const override {
    std::lock_guard<std::mutex> lock(cache_mu_);
    return free_bytes_;
  }
  void release_cached() noexcept override {
    std::multimap<size_t, void*> drop;
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      drop.swap(free_big_);
      free_bytes_ = 0;
    }
    for (auto& [bytes, p] : drop) ::operator delete(p, std::align_val_t(kAlign));
    return_free_heap();  // back to the system, where a container's limit counts them
  }

  DevicePtr alloc(size_t n) override {
    // Round up to whole cache lines (and at least one, so n == 0 still yields a unique pointer).
    // Sizes past kMaxBytes are refused before the byte count is formed, so it cannot wrap around
    // to a small allocation (the SIZE_MAX bound matters for 32-bit builds), and the allocator is
    // never asked for something no machine has.
    if (n > kMaxBytes / sizeof(float) || n > (SIZE_MAX - kAlign) / sizeof(float)) {
      throw Error(codes::kOutOfMemory, "cannot allocate " + std::to_string(n) + " floats (" +
                                           std::to_string(static_cast<double>(n) * sizeof(float) / (1ull << 40)) +
                                           " TiB) on the CPU");
    }
    const size_t bytes = n == 0 ? kAlign : (n * sizeof(float) + kAlign - 1) / kAlign * kAlign;
    if (bytes >= kCacheMin) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = free_big_.find(bytes);
      if (it != free_big_.end()) {
        void* p = it->second;
        free_big_.erase(it);
        free_bytes_ -= bytes;
        live_big_.emplace(p, bytes);
        return {p, StorageType::kFloat32};
      }
    }
    void* p = ::operator new(bytes, std::align_val_t(kAlign), std::nothrow);
    if (!p) {
      throw Error(codes::kOutOfMemory, "out of memory allocating " + std::to_string(bytes) + " bytes on the CPU");
    }
    if (bytes >= kCacheMin) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      try {
        live_big_.emplace(p, bytes);
      } catch (...) {
        ::operator delete(p, std::align_val_t(kAlign));
        throw Error(codes::kOutOfMemory, "out of memory tracking a CPU allocation");
      }
    }
    return {p, StorageType::kFloat32};
  }

  void release(DevicePtr block) noexcept override {
    void* p = block.get();
    if (!p) return;
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = live_big_.find(p);
      if (it != live_big_.end()) {
        const size_t bytes = it->second;
        live_big_.erase(it);
        if (free_bytes_ + bytes <= kCacheMax) {
          try {
            free_big_.emplace(bytes, p);
            free_bytes_ += bytes;
            return;
          } catch (...) {  // no memory for the node: just free the block
          }
        }
      }
    }
    ::operator delete(p, std::align_val_t(kAlign));
  }

  ~CpuBackend() override {
    for (auto& [bytes, p] : free_big_) ::operator delete(p, std::align_val_t(kAlign));
  }

  void upload(DevicePtr dst, const float* host_src, size_t n) override {
    if (n) std::memcpy(host(dst), host_src, n * sizeof(float));
  }

  void download(float* host_dst, DevicePtr src, size_t n) override {
    if (n) std::memcpy(host_dst, host(src), n * sizeof(float));
  }
  void upload_bytes(DevicePtr dst, const void* host_src, size_t bytes) override {
    if (bytes) std::memcpy(dst.get(), host_src, bytes);
  }
  void download_bytes(void* host_dst, DevicePtr src, size_t bytes) override {
    if (bytes) std::memcpy(host_dst, src.get(), bytes);
  }

  void copy_rows(DevicePtr dst_ptr, int64_t dst_ld, DevicePtr src_ptr, int64_t src_ld, int64_t rows,
                 int64_t n) override {
    if (rows <= 0 || n <= 0) return;
    float* dst = host(dst_ptr);
    const float* src = host(src_ptr);
    if (dst_ld == n && src_ld == n) {
      std::memcpy(dst, src, static_cast<size_t>(rows * n) * sizeof(float));
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(dst + r * dst_ld, src + r * src_ld, static_cast<size_t>(n) * sizeof(float));
    }
  }

  std::unique_ptr<PreparedLinear> prepare_linear(const float* host_w, int64_t N, int64_t K,
                                                 WeightDtype dtype) override {
    return cpu::PackedLinear::pack(host_w, N, K, dtype, &pool_);
  }

  void gemm(const GemmArgs& a) override {
    timed([&] { return "gemm " + std::to_string(a.M) + "x" + std::to_string(a.N) + "x" + std::to_string(a.K); },
          [&] { cpu::gemm(on_host(a), pool_, isa_); });
  }
  void mlp(const MlpArgs& a) override {
    timed([&] { return "mlp " + std::to_string(a.M) + "x" + std::to_string(a.D) + "x" + std::to_string(a.I); },
          [&] {
            const cpu::MlpArgs h = on_host(a);
            const bool forced =
                mlp_mode_ != cpu::MlpMode::kAuto && mlp_mode_ != cpu::MlpMode::kUnfused && !cpu::mlp_fusable(isa_, h);
            Buffers buffers(*this);
            cpu::mlp(h, pool_, isa_, forced ? cpu::MlpMode::kAuto : mlp_mode_, &buffers);
          });
  }
  void layernorm(const LayerNormArgs& a) override {
    timed([] { return std::string("layernorm"); }, [&] { cpu::layernorm(on_host(a), pool_, isa_); });
  }
  void attention(const AttentionArgs& a) override {
    timed([] { return std::string("attention"); }, [&] { cpu::attention(on_host(a), pool_, isa_); });
  }
  void qkv_attention(const QkvAttentionArgs& a) override {
    timed([] { return std::string("qkv_attention"); },
          [&] {
            const cpu::QkvAttentionArgs h = on_host(a);
            const bool forced = qkv_mode_ == cpu::QkvAttentionMode::kFused && !cpu::qkv_attention_fusable(isa_, h);
            Buffers buffers(*this);
            cpu::qkv_attention(h, pool_, isa_, forced ? cpu::QkvAttentionMode::kAuto : qkv_mode_, &buffers);
          });
  }
  void patchify(const PatchifyArgs& a) override {
    timed([] { return std::string("patchify"); }, [&] { cpu::patchify(on_host(a), pool_); });
  }
  void embed_tokens(const EmbedTokensArgs& a) override {
    timed([] { return std::string("embed_tokens"); }, [&] { cpu::embed_tokens(on_host(a), pool_); });
  }
  void patchify_pixels(const PatchifyPixelsArgs& a) override {
    timed([] { return std::string("patchify_pixels"); },
          [&] {
            auto h = on_host(a);
            if (h.device_pixels) h.pixels = reinterpret_cast<const uint8_t*>(h.device_pixels);  // host memory here
            cpu::patchify_pixels(h, pool_);
          });
  }
  void pool_rows(const PoolRowsArgs& a) override {
    timed([] { return std::string("pool_rows"); }, [&] { cpu::pool_rows(on_host(a), pool_); });
  }

 private:
  // Released activation buffers of ≥ kCacheMin bytes are kept (up to kCacheMax in all) and handed
  // out again for the same size: forwards allocate the same sizes every time, and fresh blocks of
  // this size come from mmap, whose page faults and zeroing cost ~7% of a batch-8 forward.
  static constexpr size_t kCacheMin = size_t(256) << 10;
  static constexpr size_t kCacheMax = size_t(256) << 20;
  mutable std::mutex cache_mu_;
  std::unordered_map<void*, size_t> live_big_;
  std::multimap<size_t, void*> free_big_;
  size_t free_bytes_ = 0;

  // Ops go straight to their kernel unless VITMSN_CPU_PROFILE is set (then `name()` is only built
  // and the clock only read when profiling).
  template <class Name, class Fn>
  void timed(Name&& name, Fn&& fn) {
    if (!profile_) return fn();
    profile_->time(name(), fn);
  }

  cpu::Isa isa_;
  cpu::MlpMode mlp_mode_ = cpu::mlp_mode_from_env();
  int64_t layer_rows_ = knobs::integer(knobs::Knob::kCpuLayerRows);  // layer_rows()
  cpu::QkvAttentionMode qkv_mode_ = cpu::qkv_attention_mode_from_env();
  cpu::ThreadPool pool_;
  std::unique_ptr<cpu::OpProfile> profile_ =
      cpu::OpProfile::enabled_by_env() ? std::make_unique<cpu::OpProfile>() : nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

int default_cpu_threads() { return physical_core_count(); }

BackendInfo cpu_backend_info() {
  BackendInfo info{
      "cpu", true, true, std::to_string(physical_core_count()) + " physical core(s)", {"float32", "bfloat16", "int8"}};
  try {
    info.detail += ", " + cpu::isa_summary(cpu::default_isa());
  } catch (const Error& e) {  // VITMSN_CPU_ISA names a path this CPU lacks
    info.available = false;
    info.detail += ", " + std::string(e.what());
  }
  return info;
}

}  // namespace vitmsn
