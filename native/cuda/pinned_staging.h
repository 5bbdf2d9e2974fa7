// The CUDA side of the staged copies (common/staged_copy.h): two pinned host slots with an event
// each; uploads on the backend's compute stream, downloads on its copy stream (each transfer first
// waits, on the device, for the slot's previous transfer, whichever stream that ran on). Big copies go through the
// slots, with the host's part done by `copy` (several threads); small ones, and every copy when pinned memory cannot be
// had (VITMSN_CUDA_PINNED_STAGING=0, or cudaHostAlloc refused), go straight from pageable memory as before. The owner
// serialises calls (the device lock) and must not call during a graph capture.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "common/staged_copy.h"

namespace vitmsn {
namespace cuda {

class PinnedStaging final : public ChunkLink {
 public:
  // A slot of 8 MiB takes ~0.2 ms on a PCIe 5 link and about as long to fill on 8 threads; copies
  // under 2 MiB are not worth the extra host copy.
  static constexpr size_t kSlotBytes = size_t{8} << 20;
  static constexpr size_t kMinStagedBytes = size_t{2} << 20;

  PinnedStaging(cudaStream_t up, cudaStream_t down, HostCopy copy, bool enabled);
  ~PinnedStaging() override;
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // host → device: returns once `host` may be reused (the device gets the bytes in stream order),
  // on the `up` stream, or on `stream`.
  void upload(void* device_dst, const void* host, size_t bytes) { upload_on(up_, device_dst, host, bytes); }
  void upload_on(cudaStream_t stream, void* device_dst, const void* host, size_t bytes);
  // device → host on the `down` stream (the caller has waited for the work that writes device_src):
  // returns once the bytes are in `host`.
  void download(void* host, const void* device_src, size_t bytes);

  // ChunkLink (used by staged_to_device / staged_to_host).
  void to_device(void* device_dst, const void* slot_src, size_t bytes, int slot) override;
  void to_host(void* slot_dst, const void* device_src, size_t bytes, int slot) override;
  void wait(int slot) override;

 private:
  bool ready();  // the slots and events, made on first use; false from then on if they cannot be

  cudaStream_t up_, down_;
  cudaStream_t active_up_;  // the stream of the upload in progress (upload_on)
  HostCopy copy_;
  bool enabled_;
  bool tried_ = false;
  void* slots_[kStagingSlots] = {nullptr, nullptr};
  cudaEvent_t done_[kStagingSlots] = {nullptr, nullptr};
};

}  // namespace cuda
}  // namespace vitmsn
