// The run configuration: a JSON document with sections, every key declared once in
// a schema (key, type, default, range, help). The schema drives defaults,
// validation (unknown keys, types, ranges: one ConfigError naming the key),
// --set overrides and the reference table in README.md, so they cannot drift.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/hardware_config.h"
#include "engine/image_augmentation.h"
#include "kernels/gemm_precision.h"
#include "kernels/layer_step.h"
#include "kernels/row_metrics.h"
#include "models/update_order.h"

namespace eqprop {

// The conv section: the convolutional stack of model.kind = "conv_hopfield"
// (models/conv_hopfield.h). kernel, stride and padding hold one entry per conv
// layer (a single entry in the config applies to every layer).
struct ConvConfig {
  std::vector<int> input_shape;  // C, H, W
  std::vector<int> channels;
  std::vector<int> kernel;
  std::vector<int> stride;
  std::vector<int> padding;
  std::string pool = "max";  // max, avg, none
};

struct ModelConfig {
  std::string kind = "dense_hopfield";  // which EnergyModel (engine/model_factory.h)
  // dense_hopfield: input, hidden..., output sizes. conv_hopfield: the dense layers
  // after the conv stack, hidden..., output.
  std::vector<int> layers;
  CostKind cost = CostKind::mse;
  float init_gain = 1.0f;
  ConvConfig conv;
};

// model.kind = "oscillator" (models/oscillator_network.h).
struct OscillatorConfig {
  float shil = 0.0f;                          // S, second-harmonic injection
  float input_scale = 3.14159265358979f;      // input phases = input_scale * x
};

// The "ising" section: how the Ising network (model.kind = "ising",
// models/ising_network.h) anneals and reads out. Its sweep counts are
// dynamics.t_free and dynamics.t_nudge.
struct IsingConfig {
  float temperature_start = 2.0f;
  float temperature_end = 0.1f;
  bool metropolis = false;  // the update rule; false: Gibbs (heat bath)
  bool dsb = false;         // relaxation by discrete simulated bifurcation instead of annealing
  int spins_per_class = 1;
  int replicas = 1;
};

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
  std::vector<float> learning_rates;
  bool single_rate = false;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  bool cosine_schedule = false;

  float learning_rate(std::size_t tensor) const { return learning_rates[single_rate ? 0 : tensor]; }
};

struct TrainingConfig {
  int epochs = 30;
  int batch_size = 128;
  int eval_batch_size = 1000;
  int prefetch_batches = 3;
  bool checkpoint_every_epoch = true;
  GemmPrecision gemm_precision = GemmPrecision::fp32;
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
  OscillatorConfig oscillator;
  DynamicsConfig dynamics;
  IsingConfig ising;
  EpConfig ep;
  OptimizerConfig optimizer;
  TrainingConfig training;
  DataConfig data;
  HardwareConfig hardware;  // the "hardware" section: every part off by default
  nlohmann::json resolved;  // every key with its value, as written to config.json
};

// Validates `user` (a partial config: absent keys take their defaults) and returns
// the typed config. `source` names the file in error messages.
Config parse_config(const nlohmann::json& user, const std::string& source);

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
