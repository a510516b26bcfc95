#include "engine/captured_step.h"

#include <exception>
#include <utility>

#include "kernels/error.h"
#include "models/model_registry.h"

namespace eqprop {

std::string step_capture_refusal(const Config& config) {
  // Each reason is a per-step value that is still a launch argument, or a host
  // decision inside the step: a replay would repeat the recorded value.
  if (!model_kind(config.model.kind).capturable_step)
    return "model.kind = " + config.model.kind +
           " does not declare its step free of host reads and launch-time random keys (ModelKind::capturable_step)";
  if (config.dynamics.tolerance > 0.0f)
    return "dynamics.tolerance > 0 (early exit reads each phase's residual on the host)";
  if (config.training.implicit)
    return "training.algorithm = implicit (the adjoint's residual is read on the host)";
  return "";
}

bool records_steps(const Config& config, Backend& backend, int ranks, std::string* why) {
  const auto answer = [why](bool record, std::string reason) {
    if (why) *why = std::move(reason);
    return record;
  };
  const CudaGraphMode mode = config.training.cuda_graphs;
  if (mode == CudaGraphMode::off) return answer(false, "off (training.cuda_graphs = off)");
  const std::string refusal = step_capture_refusal(config);
  if (!refusal.empty()) return answer(false, "off (" + refusal + ")");
  if (ranks > 1) return answer(false, "off (" + std::to_string(ranks) + " MPI ranks: their sums are not recorded)");
  if (!backend.stream_capture()) return answer(false, "off (the " + backend.name() + " backend runs each call directly)");
  if (mode == CudaGraphMode::automatic && !kAutoRecordsSteps)
    return answer(false, "off (auto: on once a GPU run has shown replayed steps equal to direct ones; "
                         "training.cuda_graphs = on records them now)");
  return answer(true, "on (each step shape recorded after " + std::to_string(CapturedStep::kWarmupRuns) +
                          " direct run, then replayed)");
}

std::string step_capture_summary(const Config& config, Backend& backend, int ranks) {
  std::string why;
  records_steps(config, backend, ranks, &why);
  return why;
}

CapturedStep::CapturedStep(Backend& backend, bool record, bool required)
    : capture_(record ? backend.stream_capture() : nullptr), record_(record && capture_), required_(required) {}

std::size_t CapturedStep::graphs() const {
  std::size_t count = 0;
  for (const Entry& entry : entries_) count += entry.graph ? 1 : 0;
  return count;
}

CapturedStep::Entry* CapturedStep::entry_of(const StepShape& shape) {
  for (Entry& entry : entries_)
    if (entry.shape == shape) return &entry;
  if (entries_.size() == kMaxGraphs) return nullptr;
  entries_.push_back(Entry{shape, 0, nullptr});
  return &entries_.back();
}

void CapturedStep::run(const StepShape& shape, const std::function<void()>& enqueue_step) {
  Entry* entry = record_ ? entry_of(shape) : nullptr;
  if (!entry) return enqueue_step();
  if (entry->graph) return entry->graph->replay();
  if (entry->direct_runs < kWarmupRuns) {
    ++entry->direct_runs;
    return enqueue_step();
  }
  capture_->begin_capture();
  try {
    enqueue_step();
    entry->graph = capture_->end_capture();
  } catch (const DeviceError& error) {
    // A call that cannot be recorded (a host wait, an allocation): nothing of the
    // step ran, so it runs again directly, and so do all steps after it.
    capture_->abort_capture();
    if (required_)
      throw DeviceError(std::string("training.cuda_graphs = on, but the training step could not be recorded as a "
                                    "CUDA graph (set it to auto or off): ") + error.what());
    record_ = false;
    failure_ = error.what();
    entries_.clear();
    return enqueue_step();
  } catch (...) {
    capture_->abort_capture();
    throw;
  }
  entry->graph->replay();
}

}  // namespace eqprop
