// Recording a sequence of backend calls once and replaying it (CUDA graphs,
// kernels/cuda_graph.h): a training step of a fixed shape is hundreds of short
// launches whose submission costs more than their work (perf/gpu_step_model.md);
// replayed as one graph it is a single submission. Plain C++: only the CUDA side
// implements it; Backend::stream_capture() is null where calls run directly (CPU).
#pragma once

#include <cstddef>
#include <memory>

namespace eqprop {

// A recorded sequence: replay() submits all of it, ordered after the calls before
// it on the backend and before the calls after it, with the arguments it was
// recorded with (values that change must be read from device memory,
// kernels/step_parameters.h).
class CapturedGraph {
 public:
  virtual ~CapturedGraph() = default;
  virtual void replay() = 0;
  virtual std::size_t nodes() const = 0;  // operations recorded
};

class StreamCapture {
 public:
  virtual ~StreamCapture() = default;
  // From here until end_capture, backend calls are recorded instead of run. A call
  // that must wait for the device (a copy to the host, a synchronization) cannot
  // be recorded: it throws DeviceError, and the caller then calls abort_capture.
  virtual void begin_capture() = 0;
  // The recorded calls as a graph ready to replay. Throws DeviceError where the
  // capture failed (the backend runs calls directly again either way).
  virtual std::unique_ptr<CapturedGraph> end_capture() = 0;
  // Ends a capture that a throwing call interrupted and drops what was recorded;
  // the backend runs calls directly again. A no-op outside a capture.
  virtual void abort_capture() noexcept = 0;
};

}  // namespace eqprop
