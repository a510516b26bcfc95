// The values of a training step that change from one step to the next, kept in one
// block of device memory at a fixed address for the whole run: kernels read them
// there when they run instead of taking them as launch arguments. A step whose
// launches then carry only fixed arguments (pointers, shapes, constants) can be
// recorded once as a CUDA graph and replayed every batch (DESIGN.md, "Captured
// training steps"): the host writes the new values and uploads the block before
// each replay.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"

namespace eqprop {

struct StepParameters {
  // Parameter layers a block holds a learning rate for (weights and biases of a
  // layer share one); the trainer refuses models with more.
  static constexpr int kMaxLayers = 128;
  float learning_rates[kMaxLayers];  // per parameter layer: optimizer.lr(l) x the schedule's scale
  std::int32_t metric_slot;          // the step's slot in the trainer's queue of unread metrics
  // The step's number, which keys its random draws: the hardware model's reads and
  // input writes take it as their count and the parameter writes it + 1
  // (kernels/draw_count.h); the Langevin noise keys on the samples before the
  // step's batch (kernels/noise_key.h).
  std::uint32_t step_number;
  std::uint64_t first_sample;
};
static_assert(std::is_trivially_copyable<StepParameters>::value, "the block is copied to the device as bytes");

// The device block and its host copies. The host copies are pinned (the upload is
// an asynchronous copy on the compute stream, Backend::enqueue_copy_to_device), so
// one must not change before its upload has run: the caller cycles through
// `host_copies` of them and reuses one only after it has waited for the device
// (the trainer takes the metric slot, whose reuse follows a read of the metrics).
// On the CPU backend the upload is a memcpy at once.
class StepParameterBlock {
 public:
  StepParameterBlock() = default;
  StepParameterBlock(Backend& backend, int host_copies)
      : backend_(&backend), device_(backend, 1), host_(backend, static_cast<std::size_t>(host_copies)) {
    for (std::size_t c = 0; c < host_.size(); ++c) host_.data()[c] = StepParameters{};
  }

  // Host copy `copy` (in [0, host_copies)), to fill before upload(copy).
  StepParameters& host(int copy) { return host_.data()[copy]; }
  // Enqueues the copy of host(copy) into the device block, ordered with compute.
  void upload(int copy) {
    backend_->enqueue_copy_to_device(device_.data(), host_.data() + copy, sizeof(StepParameters));
  }

  const StepParameters* device() const { return device_.data(); }
  const float* learning_rate(int layer) const { return device_.data()->learning_rates + layer; }
  const std::int32_t* metric_slot() const { return &device_.data()->metric_slot; }
  const std::uint32_t* step_number() const { return &device_.data()->step_number; }
  const std::uint64_t* first_sample() const { return &device_.data()->first_sample; }

 private:
  Backend* backend_ = nullptr;
  DeviceBuffer<StepParameters> device_;      // (1)
  HostStagingBuffer<StepParameters> host_;  // (host_copies) pinned
};

}  // namespace eqprop
