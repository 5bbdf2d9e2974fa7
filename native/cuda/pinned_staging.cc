#include "cuda/pinned_staging.h"

#include <cstdio>

#include "cuda/cuda_check.h"

namespace vitmsn {
namespace cuda {

PinnedStaging::PinnedStaging(cudaStream_t up, cudaStream_t down, HostCopy copy, bool enabled)
    : up_(up), down_(down), active_up_(up), copy_(std::move(copy)), enabled_(enabled && copy_) {}

PinnedStaging::~PinnedStaging() {
  for (int s = 0; s < kStagingSlots; ++s) {
    if (done_[s]) cudaEventSynchronize(done_[s]), cudaEventDestroy(done_[s]);  // no DMA may outlive its slot
    if (slots_[s]) cudaFreeHost(slots_[s]);
  }
  cudaGetLastError();
}

bool PinnedStaging::ready() {
  if (tried_) return slots_[0] != nullptr;
  tried_ = true;
  if (!enabled_) return false;
  bool ok = true;
  for (int s = 0; s < kStagingSlots && ok; ++s) {
    ok = cudaHostAlloc(&slots_[s], kSlotBytes, cudaHostAllocDefault) == cudaSuccess &&
         cudaEventCreateWithFlags(&done_[s], cudaEventDisableTiming) == cudaSuccess;
  }
  if (ok) return true;
  cudaGetLastError();  // page-locked memory is a limited resource: without it, copy as before
  for (int s = 0; s < kStagingSlots; ++s) {
    if (done_[s]) cudaEventDestroy(done_[s]);
    if (slots_[s]) cudaFreeHost(slots_[s]);
    done_[s] = nullptr, slots_[s] = nullptr;
  }
  return false;
}

void PinnedStaging::upload_on(cudaStream_t stream, void* device_dst, const void* host, size_t bytes) {
  if (bytes == 0) return;
  if (bytes < kMinStagedBytes || !ready()) {
    // From pageable memory the call returns once the driver has staged the bytes.
    check(cudaMemcpyAsync(device_dst, host, bytes, cudaMemcpyHostToDevice, stream), "upload");
    return;
  }
  struct Active {  // the link's to_device uses `stream` for this copy only, also if it throws
    cudaStream_t& s;
    cudaStream_t keep;
    ~Active() { s = keep; }
  } active{active_up_, up_};
  active_up_ = stream;
  staged_to_device(*this, slots_, kSlotBytes, device_dst, host, bytes, copy_);
}

void PinnedStaging::download(void* host, const void* device_src, size_t bytes) {
  if (bytes >= kMinStagedBytes && ready()) {
    staged_to_host(*this, slots_, kSlotBytes, host, device_src, bytes, copy_);
    return;
  }
  if (bytes) check(cudaMemcpyAsync(host, device_src, bytes, cudaMemcpyDeviceToHost, down_), "download");
  check(cudaStreamSynchronize(down_), "download sync");
}

void PinnedStaging::to_device(void* device_dst, const void* slot_src, size_t bytes, int slot) {
  check(cudaStreamWaitEvent(active_up_, done_[slot], 0), "staged upload order");
  check(cudaMemcpyAsync(device_dst, slot_src, bytes, cudaMemcpyHostToDevice, active_up_), "staged upload");
  check(cudaEventRecord(done_[slot], active_up_), "staged upload event");
}

void PinnedStaging::to_host(void* slot_dst, const void* device_src, size_t bytes, int slot) {
  check(cudaStreamWaitEvent(down_, done_[slot], 0), "staged download order");
  check(cudaMemcpyAsync(slot_dst, device_src, bytes, cudaMemcpyDeviceToHost, down_), "staged download");
  check(cudaEventRecord(done_[slot], down_), "staged download event");
}

void PinnedStaging::wait(int slot) { check(cudaEventSynchronize(done_[slot]), "staged copy wait"); }

}  // namespace cuda
}  // namespace vitmsn
