// Large copies between pageable host memory and a device, through two page-locked ("pinned") host
// slots. A device's DMA engine reads and writes pinned memory at full link speed, while a copy from
// pageable memory goes through the driver's own small staging at a fraction of it (and a whole
// forward's input and output are 100+ MB at large batches). So a big copy is cut into slot-sized
// chunks: the host copies chunk i into one slot (with several threads: one core's memcpy is slower
// than the link) while the DMA of chunk i−1 runs from the other slot, and the reverse on the way out.
//
// The pipelining is device-neutral, written against ChunkLink (the device's asynchronous chunk
// transfers and their completion), so its ordering rules are tested on the CPU with a link whose
// transfers complete at arbitrary times (native/tests/test_engine_staged_copy.cc); the CUDA backend
// provides the real link (native/cuda/pinned_staging.h). The rules: a slot is written by the host
// only after the last transfer reading it has finished, and read by the host only after the
// transfer writing it has finished.
#pragma once
#include <cstddef>
#include <functional>

namespace vitmsn {

constexpr int kStagingSlots = 2;

// Copies `bytes` from src to dst on the host (possibly on several threads); returns when done.
using HostCopy = std::function<void(void* dst, const void* src, size_t bytes)>;

// One device's asynchronous transfers between a slot and device memory, in the order enqueued.
class ChunkLink {
 public:
  virtual ~ChunkLink() = default;
  // Enqueue a transfer of `bytes` from/to slot `slot`; they return before it completes.
  virtual void to_device(void* device_dst, const void* slot_src, size_t bytes, int slot) = 0;
  virtual void to_host(void* slot_dst, const void* device_src, size_t bytes, int slot) = 0;
  // Returns once every transfer enqueued on `slot` has finished.
  virtual void wait(int slot) = 0;
};

// host[0, bytes) → device_dst, chunk by chunk through `slots` (each slot_bytes long). Returns once
// every byte is in a slot and its transfer is enqueued: the caller may reuse `host` right away,
// and the device sees the data in its transfer order. The slots stay busy until their transfers
// finish (the next staged copy waits for them).
void staged_to_device(ChunkLink& link, void* const (&slots)[kStagingSlots], size_t slot_bytes, void* device_dst,
                      const void* host, size_t bytes, const HostCopy& copy);

// device_src[0, bytes) → host, the same way; returns once every byte is in `host`.
void staged_to_host(ChunkLink& link, void* const (&slots)[kStagingSlots], size_t slot_bytes, void* host,
                    const void* device_src, size_t bytes, const HostCopy& copy);

}  // namespace vitmsn
