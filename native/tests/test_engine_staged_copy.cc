// The staged copies' ordering rules (native/common/staged_copy.h) on a link whose transfers run in
// order but complete whenever they like: a "device" in host memory, a FIFO of pending transfers of
// which a random prefix executes at every step, and wait(slot) executing up to that slot's last
// transfer. The host copy checks that it never touches a slot with a transfer still pending (what
// would corrupt data on a real DMA engine), and the results are compared byte for byte, over sizes
// around the slot size, both directions back to back, and a copy in several threads.
#include "tests/harness.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/staged_copy.h"

using namespace vitmsn;

namespace {

struct Pending {
  void* dst;
  const void* src;
  size_t bytes;
  int slot;
};

class FakeLink final : public ChunkLink {
 public:
  explicit FakeLink(uint64_t seed) : rng_(seed) {}
  void to_device(void* dst, const void* slot_src, size_t bytes, int slot) override {
    push({dst, slot_src, bytes, slot});
  }
  void to_host(void* slot_dst, const void* src, size_t bytes, int slot) override { push({slot_dst, src, bytes, slot}); }
  void wait(int slot) override {
    size_t last = 0;
    bool any = false;
    for (size_t i = 0; i < q_.size(); ++i)
      if (q_[i].slot == slot) last = i, any = true;
    if (any) run(last + 1);
    ++waits;
  }
  bool slot_pending(int slot) const {
    for (const Pending& p : q_)
      if (p.slot == slot) return true;
    return false;
  }
  void drain() { run(q_.size()); }
  size_t transfers = 0, waits = 0;

 private:
  void push(Pending p) {
    q_.push_back(p);
    ++transfers;
    run(std::uniform_int_distribution<size_t>(0, q_.size())(rng_));  // some finish now, in order
  }
  void run(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(q_.front().dst, q_.front().src, q_.front().bytes);
      q_.pop_front();
    }
  }
  std::deque<Pending> q_;
  std::mt19937_64 rng_;
};

struct Staging {
  explicit Staging(size_t slot_bytes) : a(slot_bytes), b(slot_bytes), slots{a.data(), b.data()}, size(slot_bytes) {}
  std::vector<uint8_t> a, b;
  void* slots[kStagingSlots];
  size_t size;
  int slot_of(const void* p, size_t n) const {  // which slot [p, p+n) overlaps, or -1
    for (int s = 0; s < kStagingSlots; ++s) {
      const auto* lo = static_cast<const uint8_t*>(slots[s]);
      const auto* q = static_cast<const uint8_t*>(p);
      if (q < lo + size && q + n > lo) return s;
    }
    return -1;
  }
};

std::vector<uint8_t> pattern(size_t n, uint8_t salt) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 131 + (i >> 8) * 7 + salt) & 0xff);
  return v;
}

// A host copy that flags every touch of a slot whose transfer has not finished.
HostCopy guarded_copy(const FakeLink& link, const Staging& st, int& violations, size_t& copies) {
  return [&](void* dst, const void* src, size_t n) {
    for (int s : {st.slot_of(dst, n), st.slot_of(src, n)})
      if (s >= 0 && link.slot_pending(s)) ++violations;
    std::memcpy(dst, src, n);
    ++copies;
  };
}

void round_trip(size_t slot_bytes, size_t bytes, uint64_t seed) {
  const std::string what =
      "slot " + std::to_string(slot_bytes) + " B, " + std::to_string(bytes) + " B, seed " + std::to_string(seed);
  FakeLink link(seed);
  Staging st(slot_bytes);
  int violations = 0;
  size_t copies = 0;
  const HostCopy copy = guarded_copy(link, st, violations, copies);
  const std::vector<uint8_t> in = pattern(bytes, static_cast<uint8_t>(seed));
  std::vector<uint8_t> device(bytes + 1, 0xAB), out(bytes + 1, 0xCD);

  std::vector<uint8_t> src = in;
  staged_to_device(link, st.slots, slot_bytes, device.data(), src.data(), bytes, copy);
  // The caller may reuse its buffer at once (the device must still receive the original bytes).
  std::fill(src.begin(), src.end(), 0);
  // Straight into a download of the same bytes (the transfers stay in order on the link).
  staged_to_host(link, st.slots, slot_bytes, out.data(), device.data(), bytes, copy);
  link.drain();
  const size_t chunks = (bytes + slot_bytes - 1) / slot_bytes;
  check(violations == 0, what + ": the host never touched a slot with a transfer pending",
        std::to_string(violations) + " violations");
  check(std::memcmp(device.data(), in.data(), bytes) == 0 && device[bytes] == 0xAB,
        what + ": device bytes equal the input, nothing past the end");
  check(std::memcmp(out.data(), in.data(), bytes) == 0 && out[bytes] == 0xCD,
        what + ": downloaded bytes equal the input, nothing past the end");
  check(copies == 2 * chunks && link.transfers == 2 * chunks, what + ": one host copy and one transfer per chunk",
        std::to_string(copies) + " copies, " + std::to_string(link.transfers) + " transfers, " +
            std::to_string(chunks) + " chunks");
}

}  // namespace

int main() {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{127}, size_t{128},
                         size_t{129}, size_t{160}, size_t{1000}, size_t{4097}}) {
      run_case("round trip", [&] { round_trip(64, bytes, seed); });
    }
  }
  run_case("one-byte slots", [] { round_trip(1, 37, 9); });

  run_case("several uploads back to back reuse the slots safely", [] {
    FakeLink link(42);
    Staging st(100);
    int violations = 0;
    size_t copies = 0;
    const HostCopy copy = guarded_copy(link, st, violations, copies);
    std::vector<uint8_t> device(3 * 350);
    std::vector<std::vector<uint8_t>> ins;
    for (int k = 0; k < 3; ++k) {
      ins.push_back(pattern(350, static_cast<uint8_t>(k * 50)));
      staged_to_device(link, st.slots, 100, device.data() + k * 350, ins.back().data(), 350, copy);
    }
    link.drain();
    bool same = true;
    for (int k = 0; k < 3; ++k) same = same && std::memcmp(device.data() + k * 350, ins[k].data(), 350) == 0;
    check(violations == 0 && same, "three uploads in a row: no slot overwritten early, every byte arrives");
  });

  run_case("a host copy on several threads", [] {
    FakeLink link(7);
    Staging st(1000);
    const HostCopy threaded = [](void* dst, const void* src, size_t n) {
      std::vector<std::thread> ts;
      const size_t part = (n + 2) / 3;
      for (size_t off = 0; off < n; off += part)
        ts.emplace_back([=] {
          std::memcpy(static_cast<uint8_t*>(dst) + off, static_cast<const uint8_t*>(src) + off,
                      std::min(part, n - off));
        });
      for (auto& t : ts) t.join();
    };
    const std::vector<uint8_t> in = pattern(5555, 3);
    std::vector<uint8_t> device(5555), out(5555);
    staged_to_device(link, st.slots, 1000, device.data(), in.data(), in.size(), threaded);
    staged_to_host(link, st.slots, 1000, out.data(), device.data(), in.size(), threaded);
    link.drain();
    check(out == in && device == in, "5555 bytes through 1000-byte slots, copies on three threads");
  });

  expect_error("empty slots are refused", "ERR_INTERNAL", "empty slots", [] {
    FakeLink link(1);
    void* const slots[kStagingSlots] = {nullptr, nullptr};
    uint8_t b = 0;
    staged_to_device(link, slots, 0, &b, &b, 1, [](void*, const void*, size_t) {});
  });
  return finish();
}
