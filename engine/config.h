// The run configuration: a JSON document with sections, every key declared once in
// a schema (key, type, default, range, help; models/config_key.h). The schema
// drives defaults, validation (unknown keys, types, ranges: one ConfigError naming
// the key), --set overrides and the reference table in README.md, so they cannot
// drift. The run-wide sections are declared in engine/config.cpp; each model kind
// declares its own section next to its code (models/model_registry.h), and its
// typed options travel in ModelConfig::options. Struct defaults equal the schema's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/hardware_config.h"
#include "engine/image_augmentation.h"
#include "kernels/backend.h"
#include "kernels/gemm_precision.h"
#include "kernels/layer_step.h"
#include "kernels/row_metrics.h"
#include "models/model_config.h"
#include "models/update_order.h"

namespace eqprop {

struct DynamicsConfig {
  Integrator integrator = Integrator::fixed_point;        // free phase
  Integrator nudge_integrator = Integrator::fixed_point;  // nudged phases
  UpdateOrder order = UpdateOrder::synchronous;           // every phase (models/update_order.h)
  float dt = 0.5f;
  int t_free = 30;
  int t_nudge = 10;
  float gamma = 0.5f;  // cSB damping
  float a0 = 1.0f;     // cSB position gain
  bool pump = false;   // cSB bifurcation pump ramp
  float noise = 0.0f;  // Langevin sigma
  float temperature = 0.0f;  // Langevin temperature T (instead of noise): exp(-E/T) for every integrator
  float tolerance = 0.0f;
  int check_every = 5;
};

struct EpConfig {
  float beta = 0.5f;
  bool symmetric = true;
  bool random_sign = false;
};

struct OptimizerConfig {
  // One per weight tensor, or a single rate for all (single_rate): learning_rate().
  std::vector<float> learning_rates = {0.05f};
  bool single_rate = true;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  bool cosine_schedule = false;

  float learning_rate(std::size_t tensor) const { return learning_rates[single_rate ? 0 : tensor]; }
};

// training.cuda_graphs: whether the training step is recorded once as a CUDA graph
// and replayed (engine/captured_step.h).
enum class CudaGraphMode { automatic, on, off };

struct TrainingConfig {
  int epochs = 30;
  int batch_size = 128;
  int eval_batch_size = 1000;
  int prefetch_batches = 3;
  int threads = 0;  // CPU team size of a training step; 0: tuned (engine/thread_team.h)
  GemmPrecision gemm_precision = GemmPrecision::fp32;
  ConvolutionPath conv_path = ConvolutionPath::automatic;
  // training.algorithm = implicit: the exact gradient at the free fixed point by
  // implicit differentiation (EnergyModel::implicit_gradient) instead of EP.
  bool implicit = false;
  int adjoint_iterations = 50;
  CudaGraphMode cuda_graphs = CudaGraphMode::automatic;
};

struct DataConfig {
  std::string name = "fashion_mnist";
  std::string dir;
  bool standardize = false;
  std::int64_t train_limit = 0;  // 0: all samples
  std::int64_t test_limit = 0;
  AugmentationOptions augmentation;  // training set only
};

struct Config {
  std::uint64_t seed = 1;
  std::string device = "auto";
  ModelConfig model;
  DynamicsConfig dynamics;
  EpConfig ep;
  OptimizerConfig optimizer;
  TrainingConfig training;
  DataConfig data;
  HardwareConfig hardware;  // the "hardware" section: every part off by default
  nlohmann::json resolved;  // every key with its value, as written to config.json
};

// Validates `user` (a partial config: absent keys take their defaults) and returns
// the typed config. `source` names the file in error messages. A key the user sets
// away from its default where it has no effect (a converter's bits while it is off, cSB's damping
// under another integrator, ...) is a ConfigError naming the setting it needs.
// `base`, when given, is a config the user's keys apply to, e.g. a checkpoint's
// config.json: its keys are validated but not counted as the user's.
Config parse_config(const nlohmann::json& user, const std::string& source,
                    const nlohmann::json& base = nlohmann::json::object());

// The hardware section alone (a config with only that section), for tests and tools.
HardwareConfig parse_hardware_config(const nlohmann::json& section, const std::string& source);

// Reads a JSON config file (ConfigError if missing or malformed).
nlohmann::json read_config_file(const std::string& path);

// Applies "section.key=value" to a partial config; the value is parsed as the
// key's schema type (numbers, booleans, strings, JSON arrays).
void apply_override(nlohmann::json& user, const std::string& assignment);

// The reference of every key, default and range, as a Markdown table.
std::string config_reference_markdown();

}  // namespace eqprop
