// The bookkeeping behind CudaBackend::run_recorded, by Backend::RecordKey (owner model + request):
// recorded forwards, the activation bytes each key's first (eager) call measured, and keys whose
// capture failed. Plain C++ (no CUDA types) so its rules are tested on any machine
// (native/tests/test_graph_cache.cc); the entries' own destructors free what they hold.
//
// - Bounded: a recording pins its activations' memory, so at most kMaxGraphs live at once; the least
//   recently used one goes first.
// - Released with its owner: forget(owner) drops every entry, measurement and failure of one model.
// - A failed capture is retried on later calls; only after kMaxFailures failures of one key does
//   that key stay eager (its reason is kept for the summary).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "backend/backend.h"

namespace vitmsn {
namespace cuda {

template <typename Entry>
class GraphCache {
 public:
  static constexpr size_t kMaxGraphs = 8;
  static constexpr int kMaxFailures = 3;
  using Key = std::pair<uint64_t, std::string>;
  static Key key_of(const Backend::RecordKey& k) { return {k.owner, k.what}; }

  Entry* find(const Key& key) {
    auto it = graphs_.find(key);
    if (it == graphs_.end()) return nullptr;
    it->second.last_use = ++clock_;
    return it->second.entry.get();
  }
  Entry* insert(const Key& key, std::unique_ptr<Entry> e) {
    if (graphs_.size() >= kMaxGraphs && !graphs_.count(key)) {
      auto oldest = graphs_.begin();
      for (auto it = graphs_.begin(); it != graphs_.end(); ++it) {
        if (it->second.last_use < oldest->second.last_use) oldest = it;
      }
      graphs_.erase(oldest);
    }
    failures_.erase(key);
    Slot& s = graphs_[key];
    s.entry = std::move(e);
    s.last_use = ++clock_;
    return s.entry.get();
  }

  // Capture failures: each one is counted; a key that failed kMaxFailures times is not tried again.
  void failed(const Key& key, const std::string& why) {
    Failure& f = failures_[key];
    ++f.count;
    f.why = why;
  }
  bool refused(const Key& key) const {
    auto it = failures_.find(key);
    return it != failures_.end() && it->second.count >= kMaxFailures;
  }

  // The first call of a key runs eagerly: it makes cuBLASLt's plans and loads kernels (lazy module
  // loading), neither of which should happen inside a capture, and measures the device memory the
  // forward allocates (the arena of its recording). 0 = not measured yet.
  size_t arena_bytes(const Key& key) const {
    auto it = arena_bytes_.find(key);
    return it == arena_bytes_.end() ? 0 : it->second;
  }
  void set_arena_bytes(const Key& key, size_t bytes) { arena_bytes_[key] = bytes; }

  // Everything of one owner goes (its model is being freed).
  void forget(uint64_t owner) {
    erase_owner(graphs_, owner);
    erase_owner(failures_, owner);
    erase_owner(arena_bytes_, owner);
  }
  void clear() { graphs_.clear(); }

  size_t size() const { return graphs_.size(); }
  size_t entries_of(uint64_t owner) const {
    size_t n = 0;
    for (auto& [k, v] : graphs_) n += k.first == owner;
    for (auto& [k, v] : arena_bytes_) n += k.first == owner;
    for (auto& [k, v] : failures_) n += k.first == owner;
    return n;
  }

  long recorded = 0, replays = 0;
  double device_ms = 0, host_ms = 0;  // summed over replays (measured only when verbose)
  std::string summary() const {
    size_t refused_keys = 0;
    for (auto& [k, f] : failures_) refused_keys += f.count >= kMaxFailures;
    std::string s = "graphs: recorded " + std::to_string(recorded) + ", replays " + std::to_string(replays) +
                    ", refused " + std::to_string(refused_keys);
    if (replays) {
      s += ", per replay: device " + std::to_string(device_ms / replays) + " ms, whole call " +
           std::to_string(host_ms / replays) + " ms";
    }
    for (auto& [k, f] : failures_) {
      s += "; model " + std::to_string(k.first) + " " + k.second + ": " + std::to_string(f.count) + " failed (" +
           f.why + ")";
    }
    return s;
  }

 private:
  struct Slot {
    std::unique_ptr<Entry> entry;
    uint64_t last_use = 0;
  };
  struct Failure {
    int count = 0;
    std::string why;
  };
  template <typename Map>
  static void erase_owner(Map& m, uint64_t owner) {
    m.erase(m.lower_bound(Key{owner, std::string()}), m.lower_bound(Key{owner + 1, std::string()}));
  }

  std::map<Key, Slot> graphs_;
  std::map<Key, Failure> failures_;
  std::map<Key, size_t> arena_bytes_;
  uint64_t clock_ = 0;
};

}  // namespace cuda
}  // namespace vitmsn
