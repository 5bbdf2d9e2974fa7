#include "common/staged_copy.h"

#include <algorithm>
#include <cstdint>

#include "common/error.h"

namespace vitmsn {
namespace {

void check_slots(void* const (&slots)[kStagingSlots], size_t slot_bytes) {
  if (slot_bytes == 0) throw Error(codes::kInternal, "staged copy: empty slots");
  for (const void* s : slots)
    if (!s) throw Error(codes::kInternal, "staged copy: null slot");
}

}  // namespace

void staged_to_device(ChunkLink& link, void* const (&slots)[kStagingSlots], size_t slot_bytes, void* device_dst,
                      const void* host, size_t bytes, const HostCopy& copy) {
  check_slots(slots, slot_bytes);
  auto* dst = static_cast<uint8_t*>(device_dst);
  const auto* src = static_cast<const uint8_t*>(host);
  for (size_t off = 0, i = 0; off < bytes; off += slot_bytes, ++i) {
    const int s = static_cast<int>(i % kStagingSlots);
    const size_t n = std::min(slot_bytes, bytes - off);
    link.wait(s);  // the transfer that last read this slot (this copy's or an earlier one's) is done
    copy(slots[s], src + off, n);
    link.to_device(dst + off, slots[s], n, s);
  }
}

void staged_to_host(ChunkLink& link, void* const (&slots)[kStagingSlots], size_t slot_bytes, void* host,
                    const void* device_src, size_t bytes, const HostCopy& copy) {
  check_slots(slots, slot_bytes);
  auto* dst = static_cast<uint8_t*>(host);
  const auto* src = static_cast<const uint8_t*>(device_src);
  const size_t chunks = (bytes + slot_bytes - 1) / slot_bytes;
  auto enqueue = [&](size_t i) {
    const size_t off = i * slot_bytes;
    link.to_host(slots[i % kStagingSlots], src + off, std::min(slot_bytes, bytes - off),
                 static_cast<int>(i % kStagingSlots));
  };
  // A slot may still be read by an earlier staged_to_device's transfer: transfers run in order, so
  // enqueueing after it is safe; the host only touches a slot after waiting on it.
  for (size_t i = 0; i < std::min<size_t>(chunks, kStagingSlots); ++i) enqueue(i);
  for (size_t i = 0; i < chunks; ++i) {
    const int s = static_cast<int>(i % kStagingSlots);
    const size_t off = i * slot_bytes;
    link.wait(s);
    copy(dst + off, slots[s], std::min(slot_bytes, bytes - off));
    if (i + kStagingSlots < chunks) enqueue(i + kStagingSlots);  // this slot is free again
  }
}

}  // namespace vitmsn
