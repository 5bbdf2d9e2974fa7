// Per-task scratch buffers for CPU kernels. Running out of memory is reported with the engine's
// code (ERR_OUT_OF_MEMORY) rather than as a bare std::bad_alloc.
#pragma once
#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "common/error.h"

namespace vitmsn {
namespace cpu {

// Left uninitialised: callers write every element before reading it.
inline std::unique_ptr<float[]> alloc_scratch(size_t n, const char* who) {
  float* p = new (std::nothrow) float[n];
  if (!p) {
    throw Error(codes::kOutOfMemory,
                std::string(who) + ": out of memory for a " + std::to_string(n) + "-float scratch buffer");
  }
  return std::unique_ptr<float[]>(p);
}

// A 64-byte-aligned buffer of at least `floats` floats, one per calling thread and Tag (a type
// naming the purpose, so two users on one thread never share), kept between calls and grown on
// demand: for per-op buffers whose fresh allocation (mmap, page faults) would cost more than the op.
template <class Tag>
float* thread_scratch(size_t floats, const char* who) {
  struct Buf {
    float* p = nullptr;
    size_t cap = 0;
    ~Buf() { ::operator delete(p, std::align_val_t(64)); }
  };
  thread_local Buf buf;
  if (buf.cap < floats) {
    void* p = ::operator new(floats * sizeof(float), std::align_val_t(64), std::nothrow);
    if (!p) {
      throw Error(codes::kOutOfMemory,
                  std::string(who) + ": out of memory for a " + std::to_string(floats) + "-float buffer");
    }
    ::operator delete(buf.p, std::align_val_t(64));
    buf.p = static_cast<float*>(p), buf.cap = floats;
  }
  return buf.p;
}

// Where an op that does not fuse gets its intermediate results' buffers (the unfused MLP's hidden
// rows, a LayerNorm's output): host memory valid until the op returns, asked for only on the path
// that needs it. The CPU backend lends its cached activation blocks (a forward asks for the same
// sizes every time); HeapBuffers allocates each one (tests, benchmarks).
class OpBuffers {
 public:
  virtual float* get(size_t floats) = 0;

 protected:
  ~OpBuffers() = default;
};

class HeapBuffers final : public OpBuffers {
 public:
  float* get(size_t floats) override {
    held_.push_back(alloc_scratch(floats, "op buffers"));
    return held_.back().get();
  }
  size_t count() const { return held_.size(); }  // buffers handed out so far

 private:
  std::vector<std::unique_ptr<float[]>> held_;
};

}  // namespace cpu
}  // namespace vitmsn
