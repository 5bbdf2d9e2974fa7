// A Backend that runs every op on a one-thread CPU backend, for tests of what a device backend adds
// on top (recorded forwards, pipelined transfers): subclasses override those entries only.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/factories.h"

namespace vitmsn {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::string prefix) : prefix_(std::move(prefix)), cpu_(make_cpu_backend(1)) {}
  std::string name() const override { return prefix_ + cpu_->name(); }
  DevicePtr alloc(size_t n) override { return cpu_->alloc(n); }
  size_t available_bytes() const override { return cpu_->available_bytes(); }
  bool uses_host_memory() const override { return true; }
  void release(DevicePtr p) noexcept override { cpu_->release(p); }
  void upload(DevicePtr d, const float* h, size_t n) override { cpu_->upload(d, h, n); }
  void download(float* h, DevicePtr d, size_t n) override { cpu_->download(h, d, n); }
  void upload_bytes(DevicePtr d, const void* h, size_t bytes) override { cpu_->upload_bytes(d, h, bytes); }
  void download_bytes(void* h, DevicePtr s, size_t bytes) override { cpu_->download_bytes(h, s, bytes); }
  void copy_rows(DevicePtr dst, int64_t dst_ld, DevicePtr src, int64_t src_ld, int64_t rows, int64_t n) override {
    cpu_->copy_rows(dst, dst_ld, src, src_ld, rows, n);
  }
  std::unique_ptr<PreparedLinear> prepare_linear(const float* w, int64_t N, int64_t K, WeightDtype dt) override {
    return cpu_->prepare_linear(w, N, K, dt);
  }
  void gemm(const GemmArgs& a) override { cpu_->gemm(a); }
  void layernorm(const LayerNormArgs& a) override { cpu_->layernorm(a); }
  void attention(const AttentionArgs& a) override { cpu_->attention(a); }
  void patchify(const PatchifyArgs& a) override { cpu_->patchify(a); }
  void embed_tokens(const EmbedTokensArgs& a) override { cpu_->embed_tokens(a); }
  void patchify_pixels(const PatchifyPixelsArgs& a) override { cpu_->patchify_pixels(a); }
  void pool_rows(const PoolRowsArgs& a) override { cpu_->pool_rows(a); }
  void qkv_attention(const QkvAttentionArgs& a) override { cpu_->qkv_attention(a); }
  void mlp(const MlpArgs& a) override { cpu_->mlp(a); }

 protected:
  std::string prefix_;
  std::unique_ptr<Backend> cpu_;
};

}  // namespace vitmsn
