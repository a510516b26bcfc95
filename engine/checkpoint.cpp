#include "engine/checkpoint.h"

#include <charconv>
#include <filesystem>
#include <limits>

#include "engine/atomic_file.h"
#include "engine/safetensors.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

std::string join(const std::string& dir, const char* file) {
  return (std::filesystem::path(dir) / file).string();
}

// Host copies of a parameter-shaped set under `prefix`.
void add_tensors(SafetensorsFile& file, const std::string& prefix, const ParameterSet& set,
                 const EnergyModel& model) {
  for (std::size_t l = 0; l < set.weights.size(); ++l) {
    const int layer = static_cast<int>(l);
    file.tensors[prefix + "weights." + std::to_string(l)] = Tensor{model.tensor_shape(layer, false), set.weights[l].to_host()};
    file.tensors[prefix + "biases." + std::to_string(l)] = Tensor{model.tensor_shape(layer, true), set.biases[l].to_host()};
  }
}

void load_tensors(const SafetensorsFile& file, const std::string& path, const std::string& prefix,
                  ParameterSet& set, const EnergyModel& model) {
  for (std::size_t l = 0; l < set.weights.size(); ++l) {
    const int layer = static_cast<int>(l);
    set.weights[l].copy_from_host(
        require_tensor(file, prefix + "weights." + std::to_string(l), model.tensor_shape(layer, false), path).data);
    set.biases[l].copy_from_host(
        require_tensor(file, prefix + "biases." + std::to_string(l), model.tensor_shape(layer, true), path).data);
  }
}

// A count recorded in the checkpoint's metadata: decimal digits only (no sign, no
// trailing text) and within `max`; anything else is a damaged or foreign file.
std::uint64_t metadata_count(const SafetensorsFile& file, const std::string& path, const std::string& key,
                             std::uint64_t max) {
  const std::string& text = file.metadata.at(key);
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || text.front() == '-' || error != std::errc() || stop != end || value > max)
    throw CheckpointError("checkpoint " + path + ": metadata '" + key + "' = '" + text +
                          "' is not a count in [0, " + std::to_string(max) + "]");
  return value;
}

// The layer widths the weight tensors chain (weights.l is (n_l, n_{l+1})), which
// can differ from model.layers (an Ising network's top layer has classes *
// spins_per_class spins); model.layers itself for a model whose tensors are not
// such a chain (convolution kernels).
nlohmann::json layer_widths(const EnergyModel& model, const ParameterSet& set, const nlohmann::json& configured) {
  nlohmann::json widths = nlohmann::json::array();
  for (std::size_t l = 0; l < set.weights.size(); ++l) {
    const std::vector<std::int64_t> shape = model.tensor_shape(static_cast<int>(l), false);
    if (shape.size() != 2 || (l > 0 && widths.back() != shape[0])) return configured;
    if (l == 0) widths.push_back(shape[0]);
    widths.push_back(shape[1]);
  }
  return widths.empty() ? configured : widths;
}

}  // namespace

void save_checkpoint(const std::string& dir, Trainer& trainer, int epochs_done, const EpochPosition& position) {
  const EnergyModel& model = trainer.model();
  SafetensorsFile file;
  // The optimizer's parameters: with a hardware model that keeps a full-precision
  // copy, that copy (the device values follow from it and the recorded writes).
  add_tensors(file, "", trainer.optimizer_parameters(), model);
  add_tensors(file, "momentum.", trainer.momentum(), model);
  file.metadata["format"] = "eqprop." + model.kind();
  file.metadata["epochs_done"] = std::to_string(epochs_done);
  file.metadata["device_writes"] = std::to_string(trainer.writes_done());
  file.metadata["layers"] =
      layer_widths(model, trainer.optimizer_parameters(), trainer.config().resolved["model"]["layers"]).dump();
  file.metadata["cost"] = trainer.config().resolved["model"]["cost"].get<std::string>();
  if (position.batches_done > 0) {
    const BatchResult& totals = position.totals;
    file.metadata["batches_done"] = std::to_string(position.batches_done);
    // Doubles as JSON numbers, which round-trip exactly.
    file.metadata["epoch_totals"] = nlohmann::json{{"loss_sum", totals.loss_sum},
                                                   {"correct_sum", totals.correct_sum},
                                                   {"size", totals.size},
                                                   {"batches", totals.batches},
                                                   {"free_steps", totals.free_steps},
                                                   {"nudge_steps", totals.nudge_steps},
                                                   {"adjoint_residual_max", totals.adjoint_residual_max},
                                                   {"train_seconds", position.train_seconds}}
                                        .dump();
    file.tensors["epoch.free_energies"] =
        Tensor{{static_cast<std::int64_t>(totals.free_energies.size())}, totals.free_energies};
  }
  write_file_atomically(join(dir, kConfigFile), trainer.config().resolved.dump(2) + "\n");
  write_safetensors(join(dir, kModelFile), file);
}

int load_checkpoint(const std::string& dir, Trainer& trainer, bool with_optimizer, EpochPosition* position,
                    const char* file_name) {
  const std::string path = join(dir, file_name);
  const SafetensorsFile file = read_safetensors(path);
  const EnergyModel& model = trainer.model();
  load_tensors(file, path, "", trainer.optimizer_parameters(), model);
  if (with_optimizer) load_tensors(file, path, "momentum.", trainer.momentum(), model);
  const bool has_writes = file.metadata.count("device_writes") > 0;
  trainer.program_device(
      has_writes ? static_cast<std::uint32_t>(metadata_count(file, path, "device_writes",
                                                             std::numeric_limits<std::uint32_t>::max()))
                 : 0u,
      /*resumed=*/true);
  if (position) {
    *position = EpochPosition{};
    if (file.metadata.count("batches_done") > 0) {
      position->batches_done = static_cast<std::int64_t>(
          metadata_count(file, path, "batches_done", std::numeric_limits<std::int64_t>::max()));
      const auto totals = nlohmann::json::parse(file.metadata.count("epoch_totals") ? file.metadata.at("epoch_totals")
                                                                                    : std::string(),
                                                nullptr, false);
      const auto energies = file.tensors.find("epoch.free_energies");
      if (!totals.is_object() || energies == file.tensors.end())
        throw CheckpointError("checkpoint " + path + ": a mid-epoch checkpoint without its epoch totals");
      try {
        position->totals.loss_sum = totals.at("loss_sum").get<double>();
        position->totals.correct_sum = totals.at("correct_sum").get<double>();
        position->totals.size = totals.at("size").get<int>();
        position->totals.batches = totals.at("batches").get<std::int64_t>();
        position->totals.free_steps = totals.at("free_steps").get<std::int64_t>();
        position->totals.nudge_steps = totals.at("nudge_steps").get<std::int64_t>();
        // Absent from the checkpoints of earlier versions.
        position->totals.adjoint_residual_max = totals.value("adjoint_residual_max", 0.0);
        position->train_seconds = totals.value("train_seconds", 0.0);
      } catch (const nlohmann::json::exception& error) {
        throw CheckpointError("checkpoint " + path + ": metadata 'epoch_totals': " + error.what());
      }
      position->totals.free_energies = energies->second.data;
    }
  }
  if (file.metadata.count("epochs_done") == 0)
    throw CheckpointError("checkpoint " + path + ": metadata has no 'epochs_done'");
  return static_cast<int>(metadata_count(file, path, "epochs_done", std::numeric_limits<int>::max()));
}

nlohmann::json read_checkpoint_config(const std::string& dir) {
  const std::string path = join(dir, kConfigFile);
  if (!std::filesystem::exists(path))
    throw CheckpointError(dir + " is not a checkpoint directory: " + path + " is missing");
  return read_config_file(path);
}

}  // namespace eqprop
