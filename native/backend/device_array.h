// RAII ownership of a backend allocation, so that every early exit (an exception mid-forward,
// a failed load) gives device memory back.
#pragma once
#include <cstddef>
#include <utility>

#include "backend/backend.h"

namespace vitmsn {

class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(Backend& backend, size_t n) : backend_(&backend), n_(n), p_(n ? backend.alloc(n) : DevicePtr()) {}
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept { swap(o); }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    DeviceArray(std::move(o)).swap(*this);
    return *this;
  }
  ~DeviceArray() {
    if (p_) backend_->release(p_);
  }

  DevicePtr get() const { return p_; }
  size_t size() const { return n_; }
  explicit operator bool() const { return static_cast<bool>(p_); }

 private:
  void swap(DeviceArray& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
  }
  Backend* backend_ = nullptr;
  size_t n_ = 0;
  DevicePtr p_;
};

}  // namespace vitmsn
