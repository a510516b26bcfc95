// A checkpoint directory: model.safetensors (parameters, optimizer momentum, and in
// its metadata the epochs done and the layer widths of its tensors) and config.json
// (the fully resolved config).
// Parameter tensors: "weights.{l}" (layers[l], layers[l+1]) row-major, so a
// PyTorch user computes the field as x @ weights; "biases.{l}" (layers[l+1]).
// Every file is written atomically: a crash leaves the previous checkpoint whole.
#pragma once

#include <string>

#include "engine/config.h"
#include "engine/trainer.h"

namespace eqprop {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kConfigFile = "config.json";
constexpr const char* kMetricsFile = "metrics.jsonl";

// Where a run stopped inside epoch epochs_done + 1 (preemption): the batches of it
// already trained and their running totals, so that a resumed run continues the
// epoch exactly (metadata "batches_done" and "epoch_totals", tensor
// "epoch.free_energies"; absent in a checkpoint written at an epoch's end). A run
// stopped during an epoch's evaluation has all the epoch's batches done: resumed, it
// trains none and evaluates.
struct EpochPosition {
  std::int64_t batches_done = 0;
  BatchResult totals;
  // Wall-clock seconds the epoch's training took before the stop, so that the
  // resumed epoch's record times the whole epoch (0 in checkpoints without it).
  double train_seconds = 0;
};

void save_checkpoint(const std::string& dir, Trainer& trainer, int epochs_done,
                     const EpochPosition& position = {});

// Loads parameters (and momentum, when `with_optimizer`) into the trainer from
// dir/file (model.safetensors, the last checkpoint, unless told otherwise); the
// checkpoint's shapes must match the trainer's config. Returns the epochs done;
// `position`, when given, receives the position inside the next epoch.
int load_checkpoint(const std::string& dir, Trainer& trainer, bool with_optimizer,
                    EpochPosition* position = nullptr, const char* file = kModelFile);

// The config a checkpoint directory was trained with (its config.json).
nlohmann::json read_checkpoint_config(const std::string& dir);

}  // namespace eqprop
