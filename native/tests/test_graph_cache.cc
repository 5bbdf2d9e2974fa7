// GraphCache's rules (native/cuda/graph_cache.h) on a plain entry type: keys by owner and request,
// least-recently-used eviction at the bound, everything of one owner released at once, failed
// captures retried until kMaxFailures; and GraphArena (native/cuda/graph_arena.h), the recording's
// memory: pieces given back serve the next request of their size, measuring and recording agree.
#include "tests/harness.h"

#include <memory>
#include <string>
#include <vector>

#include "cuda/graph_arena.h"
#include "cuda/graph_cache.h"

using namespace vitmsn;

namespace {

int g_live = 0;  // entries not yet destroyed: the cache must free what it drops
struct Entry {
  explicit Entry(int v) : value(v) { ++g_live; }
  ~Entry() { --g_live; }
  int value;
};
using Cache = cuda::GraphCache<Entry>;

}  // namespace

int main() {
  {
    Cache c;
    const Cache::Key a1{1, "forward 1x3x32x32"}, b1{2, "forward 1x3x32x32"}, a2{1, "forward 2x3x32x32"};
    c.insert(a1, std::make_unique<Entry>(11));
    c.insert(b1, std::make_unique<Entry>(21));
    c.insert(a2, std::make_unique<Entry>(12));
    check(c.find(a1) && c.find(a1)->value == 11, "owner 1's entry for a shape");
    check(c.find(b1) && c.find(b1)->value == 21, "owner 2's entry for the same shape is its own");
    check(!c.find({3, "forward 1x3x32x32"}), "another owner finds nothing");
    check(!c.find({1, "forward 1x3x32x32 out 1+0"}), "another request text finds nothing");

    c.set_arena_bytes(a1, 100);
    c.set_arena_bytes(b1, 200);
    check(c.arena_bytes(a1) == 100 && c.arena_bytes(b1) == 200, "measurements are per owner");
    c.failed({1, "forward 7x3x32x32"}, "capture failed");
    check(c.entries_of(1) == 4 && c.entries_of(2) == 2, "entries counted per owner");
    c.forget(1);
    check(c.entries_of(1) == 0, "forget drops entries, measurements and failures of the owner");
    check(!c.find(a1) && !c.find(a2) && c.arena_bytes(a1) == 0, "owner 1 is gone");
    check(c.find(b1) && c.arena_bytes(b1) == 200, "owner 2 stays");
    check(g_live == 1, "dropped entries were destroyed");
    c.forget(2);
    check(g_live == 0 && c.size() == 0, "empty after both owners went");
    // Owner ids at the ends of the range of one owner's keys.
    c.insert({5, ""}, std::make_unique<Entry>(1));
    c.insert({6, ""}, std::make_unique<Entry>(2));
    c.insert({4, "~~~~"}, std::make_unique<Entry>(3));
    c.forget(5);
    check(c.size() == 2 && c.find({6, ""}) && c.find({4, "~~~~"}), "forget touches only its own owner's keys");
  }
  check(g_live == 0, "the cache frees its entries when it goes");

  {
    Cache c;
    for (size_t i = 0; i < Cache::kMaxGraphs; ++i) c.insert({i + 1, "s"}, std::make_unique<Entry>(static_cast<int>(i)));
    c.find({1, "s"});  // the first becomes the most recently used; owner 2's entry is now the oldest
    c.insert({100, "s"}, std::make_unique<Entry>(100));
    check(c.size() == Cache::kMaxGraphs, "bounded at kMaxGraphs");
    check(c.find({1, "s"}) != nullptr, "a recently used entry stays");
    check(c.find({2, "s"}) == nullptr, "the least recently used entry was evicted");
    check(g_live == static_cast<int>(Cache::kMaxGraphs), "the evicted entry was destroyed");
    c.insert({100, "s"}, std::make_unique<Entry>(101));
    check(c.size() == Cache::kMaxGraphs && c.find({100, "s"})->value == 101,
          "re-inserting a key replaces it without evicting");
  }

  {
    Cache c;
    const Cache::Key k{9, "forward 4x3x224x224"};
    for (int i = 1; i < Cache::kMaxFailures; ++i) {
      c.failed(k, "capture failed");
      check(!c.refused(k), "a failed capture is retried (failure " + std::to_string(i) + ")");
    }
    c.failed(k, "capture failed");
    check(c.refused(k), "refused after kMaxFailures failures");
    check(c.summary().find("capture failed") != std::string::npos, "the summary says why");
    check(!c.refused({10, k.second}), "another owner's key is not refused");
    c.forget(9);
    check(!c.refused(k), "failures go with their owner");
    c.failed(k, "x");
    c.insert(k, std::make_unique<Entry>(1));
    c.failed(k, "y");
    check(!c.refused(k), "a successful recording resets the failure count");
  }
  {
    // The same requests measured (no block) and then cut from a block of the measured size: one
    // layer's buffers given back and taken again by the next layer fit in one layer's worth.
    auto layers = [](cuda::GraphArena& a, std::vector<size_t>& offsets) {
      offsets.push_back(a.take(1024));  // lives through the forward
      for (int l = 0; l < 12; ++l) {
        const size_t ln = a.take(256), hidden = a.take(4096);
        offsets.push_back(ln), offsets.push_back(hidden);
        a.give_back(ln), a.give_back(hidden);
      }
    };
    cuda::GraphArena measure;
    std::vector<size_t> measured, recorded;
    layers(measure, measured);
    check(measure.used() == 1024 + 256 + 4096, "given-back pieces serve again: one layer's buffers in all",
          std::to_string(measure.used()) + " bytes");
    std::vector<char> block(measure.used());
    cuda::GraphArena arena(block.data(), block.size());
    layers(arena, recorded);
    check(recorded == measured && arena.used() == measure.used(), "a block of the measured size takes the same pieces");
    check(arena.contains(arena.at(recorded[1])) && arena.offset_of(arena.at(recorded[1])) == recorded[1] &&
              !arena.contains(block.data() + block.size()),
          "addresses map back to their pieces");
    expect_error("a block that is too small", codes::kInternal, "arena exhausted", [&] { arena.take(1); });
    arena.give_back(12345);  // not a piece: ignored
    check(arena.used() == measure.used(), "giving back what is not a piece changes nothing");
  }
  return finish();
}
