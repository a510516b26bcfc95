// The training step recorded once as a CUDA graph and replayed every batch
// (training.cuda_graphs; DESIGN.md, "Captured training steps"). A dense step is
// hundreds of launches of a few microseconds of work each: submitting them costs
// more than running them (perf/gpu_step_model.md), and a replay submits them all
// at once. What may change between steps reaches the kernels through the
// step-parameter block (kernels/step_parameters.h), uploaded before each step.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/config.h"
#include "kernels/backend.h"
#include "kernels/stream_capture.h"

namespace eqprop {

// Why a training step of this config cannot be recorded, in words naming the key;
// empty where it can. The same for every backend and rank count (those are
// decided when the trainer is built).
std::string step_capture_refusal(const Config& config);

// Whether training.cuda_graphs = auto records steps. Off until perf/gpu_check.sh
// (tests/cuda/test_cuda_captured_step.cpp) has shown on a GPU that replayed steps
// equal direct ones bit for bit: the recording path has only run on the CPU so far,
// where every call runs directly. `on` records regardless.
inline constexpr bool kAutoRecordsSteps = false;

// Whether the trainer records its steps on `backend` with `ranks` MPI ranks:
// training.cuda_graphs = on or auto, the config capturable, a backend that
// records (CUDA), one rank. `why`, when given, gets the reason in words either way.
bool records_steps(const Config& config, Backend& backend, int ranks, std::string* why = nullptr);

// records_steps' answer in words ("on (...)" or "off (why)"), for the run header.
std::string step_capture_summary(const Config& config, Backend& backend, int ranks);

// The arguments that differ between recordings of one step: where its inputs are,
// how many systems it relaxes and the sign of beta. Everything else a recording
// captures is fixed for the run (the trainer's buffers) or read from the
// step-parameter block. The sign (ep.random_sign with one-sided nudging) reaches
// the nudge, the read-out's cost gradient and the contrastive scale 1 / (beta_a -
// beta_b) as a launch argument of many ops; one recording per sign replaces a
// device read in each of them, and the sign is drawn on the host anyway.
struct StepShape {
  const float* inputs = nullptr;
  const float* targets = nullptr;
  int batch = 0;
  float beta_sign = 1.0f;
  bool operator==(const StepShape& other) const {
    return inputs == other.inputs && targets == other.targets && batch == other.batch &&
           beta_sign == other.beta_sign;
  }
};

class CapturedStep {
 public:
  // Runs before a shape is recorded: the first run of a shape allocates what the
  // backend makes lazily (library workspaces, scratch), which a recording must not.
  static constexpr int kWarmupRuns = 1;
  // Recordings kept: the two input slots of train_epoch, each with either sign of
  // beta, and room for the shorter last batch of an epoch; steps of further shapes
  // run directly.
  static constexpr std::size_t kMaxGraphs = 8;

  // `record`: records_steps(...). `required` (training.cuda_graphs = on): a step
  // that fails to record throws DeviceError instead of running directly from then on.
  CapturedStep(Backend& backend, bool record, bool required);

  // Submits a step of `shape`: enqueue_step() called directly (CPU, not recording,
  // warm-up, too many shapes), or recorded on the first run after the warm-up,
  // then replayed. enqueue_step must make the same calls every time for a shape
  // and must not change host state that later steps depend on.
  void run(const StepShape& shape, const std::function<void()>& enqueue_step);

  // Drops every recording (the next steps warm up and record again): for the
  // caller to call after work of other shapes on the same backend, which may have
  // reallocated what a recording points to (a convolution library's workspace
  // grown by a larger evaluation batch).
  void forget() { entries_.clear(); }

  bool recording() const { return record_; }
  std::size_t graphs() const;
  // Why recording stopped (a step that could not be recorded, under auto); empty if it did not.
  const std::string& failure() const { return failure_; }

 private:
  struct Entry {
    StepShape shape;
    int direct_runs = 0;
    std::unique_ptr<CapturedGraph> graph;
  };
  Entry* entry_of(const StepShape& shape);

  StreamCapture* capture_;
  bool record_;
  bool required_;
  std::vector<Entry> entries_;
  std::string failure_;
};

}  // namespace eqprop
