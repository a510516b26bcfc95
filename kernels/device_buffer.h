// RAII ownership of backend memory: a typed, move-only array on the device or in
// pinned host memory, freed by the backend that allocated it.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/backend.h"

namespace eqprop {

enum class MemorySpace { device, host_staging };

template <class T, MemorySpace space>
class BackendBuffer {
 public:
  BackendBuffer() = default;
  BackendBuffer(Backend& backend, std::size_t count) : backend_(&backend), count_(count) {
    if (count == 0) return;
    void* memory = space == MemorySpace::device ? backend.allocate(count * sizeof(T))
                                                : backend.allocate_host(count * sizeof(T));
    data_ = static_cast<T*>(memory);
  }
  BackendBuffer(BackendBuffer&& other) noexcept { swap(other); }
  BackendBuffer& operator=(BackendBuffer&& other) noexcept {
    BackendBuffer(std::move(other)).swap(*this);
    return *this;
  }
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;
  ~BackendBuffer() {
    if (!data_) return;
    if (space == MemorySpace::device) {
      backend_->deallocate(data_);
    } else {
      backend_->deallocate_host(data_);
    }
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

  // The helpers below are for device memory.
  void zero() {
    if (count_) backend_->fill_zero(data_, bytes());
  }
  void copy_from_host(const std::vector<T>& host) { copy_from_host(host.data(), host.size()); }
  void copy_from_host(const T* host, std::size_t count) {
    if (count != count_) throw std::logic_error("BackendBuffer: size mismatch on upload");
    if (count_) backend_->copy_to_device(data_, host, bytes());
  }
  std::vector<T> to_host() const {
    std::vector<T> host(count_);
    if (count_) backend_->copy_to_host(host.data(), data_, bytes());
    return host;
  }

 private:
  void swap(BackendBuffer& other) noexcept {
    std::swap(backend_, other.backend_);
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
  }
  Backend* backend_ = nullptr;
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

template <class T>
using DeviceBuffer = BackendBuffer<T, MemorySpace::device>;
template <class T>
using HostStagingBuffer = BackendBuffer<T, MemorySpace::host_staging>;

}  // namespace eqprop
