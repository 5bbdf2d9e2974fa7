// A place in a backend's memory, typed by what is stored there. A backend stores activations in
// one storage type (the CPU: float32; a GPU: float32, float16 or bfloat16), so a plain float* to
// them would lie about the element size on a 16-bit backend. The engine never reads through a
// DevicePtr: it passes it to the backend's ops and moves along it by elements (p + n), which is
// right whatever the element size.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vitmsn {

enum class StorageType : uint8_t { kFloat32, kFloat16, kBFloat16 };

constexpr size_t storage_bytes(StorageType t) { return t == StorageType::kFloat32 ? 4 : 2; }

class DevicePtr {
 public:
  DevicePtr() = default;
  DevicePtr(std::nullptr_t) {}  // NOLINT: null converts implicitly, as for a pointer
  DevicePtr(void* p, StorageType type) : p_(p), type_(type) {}

  // n elements further on (n may be negative; null stays null).
  DevicePtr operator+(int64_t n) const {
    return p_ ? DevicePtr(static_cast<char*>(p_) + n * static_cast<int64_t>(storage_bytes(type_)), type_) : DevicePtr();
  }
  StorageType type() const { return type_; }
  void* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }
  bool operator==(const DevicePtr& o) const { return p_ == o.p_; }
  bool operator!=(const DevicePtr& o) const { return p_ != o.p_; }
  // The address as T*, for the backend that made it: T is its storage type.
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  StorageType type_ = StorageType::kFloat32;
};

}  // namespace vitmsn
