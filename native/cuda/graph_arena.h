// The device memory of a forward being recorded as a CUDA graph: one block, cut into the pieces the
// forward's allocations ask for, since nothing may call the allocator while a capture runs (plain
// C++: no CUDA types; test_graph_cache checks it). A piece given back is handed out again to the
// next request of the same size — every layer asks for its ops' intermediate buffers anew
// (Backend::qkv_attention and mlp), and those would otherwise take L times their memory.
//
// Without a block it only measures: run on the same sequence of requests and give-backs (the first
// call of a shape, run eagerly, before it is recorded), used() is the block size the recording needs.
#pragma once
#include <cstddef>
#include <map>

#include "common/error.h"

namespace vitmsn {
namespace cuda {

class GraphArena {
 public:
  GraphArena() = default;
  GraphArena(void* base, size_t size) : base_(base), size_(size) {}

  explicit operator bool() const { return base_ != nullptr; }  // a block is set: recording

  // The offset of a piece of `bytes`: a given-back piece of that size, else the next `bytes` after
  // every piece so far. With a block, throws ERR_INTERNAL when that would run past its end.
  size_t take(size_t bytes) {
    auto it = free_.find(bytes);
    if (it != free_.end()) {
      const size_t off = it->second;
      free_.erase(it);
      live_[off] = bytes;
      return off;
    }
    if (base_ && used_ + bytes > size_) throw Error(codes::kInternal, "CUDA graph arena exhausted");
    const size_t off = used_;
    used_ += bytes;
    live_[off] = bytes;
    return off;
  }
  // The piece at `offset` is free again (an offset that is not a live piece is ignored).
  void give_back(size_t offset) {
    auto it = live_.find(offset);
    if (it == live_.end()) return;
    free_.emplace(it->second, offset);
    live_.erase(it);
  }

  void* at(size_t offset) const { return static_cast<char*>(base_) + offset; }
  bool contains(const void* p) const {
    return base_ && p >= base_ && static_cast<const char*>(p) < static_cast<const char*>(base_) + size_;
  }
  size_t offset_of(const void* p) const {
    return static_cast<size_t>(static_cast<const char*>(p) - static_cast<const char*>(base_));
  }
  size_t used() const { return used_; }  // bytes the pieces so far have needed

 private:
  void* base_ = nullptr;
  size_t size_ = 0, used_ = 0;
  std::multimap<size_t, size_t> free_;  // bytes → offset of a given-back piece
  std::map<size_t, size_t> live_;       // offset → bytes of a piece in use
};

}  // namespace cuda
}  // namespace vitmsn
