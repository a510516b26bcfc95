// Bytes a backend currently holds on its device and the peak since the last reset,
// counted at allocate/deallocate. The batch planner (engine/batch_planner.h) reads
// it to measure what a model and trainer need per system, whatever the model.
// Counts the bytes requested (not the allocator's rounding), so a buffer sized
// linearly in the batch counts linearly. Thread-safe: the CPU backend may allocate
// from inside parallel_over_rows.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>

namespace eqprop {

struct MemoryUsage {
  std::size_t current_bytes = 0;  // held now
  std::size_t peak_bytes = 0;     // the most held at once since the last reset
};

class AllocationCounter {
 public:
  void added(const void* pointer, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    sizes_[pointer] = bytes;
    current_ += bytes;
    if (current_ > peak_) peak_ = current_;
  }
  // A pointer this counter never saw (or null) is ignored.
  void removed(const void* pointer) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = sizes_.find(pointer);
    if (found == sizes_.end()) return;
    current_ -= found->second;
    sizes_.erase(found);
  }
  MemoryUsage usage() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return MemoryUsage{current_, peak_};
  }
  // The peak restarts from what is held now.
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_ = current_;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<const void*, std::size_t> sizes_;
  std::size_t current_ = 0;
  std::size_t peak_ = 0;
};

}  // namespace eqprop
