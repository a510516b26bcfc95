#include "engine/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "engine/model_factory.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

using nlohmann::json;

enum class ValueType { integer, number, boolean, string, choice, integer_list, number_or_list };

struct KeySpec {
  std::string key;  // dotted: section.name
  ValueType type;
  json default_value;
  double min = -HUGE_VAL;  // inclusive bounds
  double max = HUGE_VAL;
  bool min_exclusive = false;
  std::vector<std::string> choices;
  std::string help;
};

// The keys of one converter of the hardware model (DAC or ADC; kernels/quantizer.h).
// Ranges: bits [1, 16]; fixed range ends within +-1e6 (finite, so the level grid is).
void add_converter_keys(std::vector<KeySpec>& keys, const std::string& name, const std::string& what,
                        const char* range, double lo, double hi, const char* convention, const std::string& range_help,
                        const std::string& convention_help) {
  const std::string p = "hardware." + name + ".";
  keys.push_back({p + "enabled", ValueType::boolean, false, 0, 0, false, {}, "Quantize " + what + " through this converter."});
  keys.push_back({p + "bits", ValueType::integer, 8, 1, kMaxQuantizerBits, false, {}, "Resolution in bits."});
  keys.push_back({p + "range", ValueType::choice, range, 0, 0, false, {"fixed", "calibrated"}, range_help});
  keys.push_back({p + "lo", ValueType::number, lo, -1e6, 1e6, false, {}, "Low end of the fixed range."});
  keys.push_back({p + "hi", ValueType::number, hi, -1e6, 1e6, false, {}, "High end of the fixed range (above lo)."});
  keys.push_back({p + "rounding", ValueType::choice, "nearest", 0, 0, false, {"nearest", "stochastic"},
                  "`nearest`: ties to even. `stochastic`: up with probability equal to the fraction of an LSB "
                  "(unbiased), from the seeded counter-based RNG."});
  keys.push_back({p + "convention", ValueType::choice, convention, 0, 0, false, {"asymmetric", "symmetric"},
                  convention_help});
}

// The analog hardware model (DESIGN.md §1): every part off by default.
void add_hardware_keys(std::vector<KeySpec>& keys) {
  add_converter_keys(keys, "dac", "the weights and biases written to the device after each update", "calibrated",
                     -1.0, 1.0, "symmetric",
                     "`calibrated`: per tensor and write, [min, max] of the values (symmetric: +-max abs(w)). "
                     "`fixed`: [lo, hi].",
                     "`symmetric`: 2^b-1 levels k*r/(2^(b-1)-1), r = max(abs(lo), abs(hi)), 0 exact (signed "
                     "weights). `asymmetric`: 2^b levels spanning [lo, hi].");
  add_converter_keys(keys, "input_dac", "the inputs written to the device", "fixed", 0.0, 1.0, "asymmetric",
                     "`fixed`: [lo, hi] (pixels / 255 live in [0, 1]). `calibrated`: per batch, [min, max] of the "
                     "inputs.",
                     "`asymmetric`: 2^b levels spanning [lo, hi] (8 bits on [0, 1] reproduce 8-bit pixels). "
                     "`symmetric`: 2^b-1 levels including 0 over [-r, r].");
  add_converter_keys(keys, "adc", "the unit states read out for the contrastive update and the prediction", "fixed",
                     0.0, 1.0, "asymmetric",
                     "`fixed`: [lo, hi] (states live in [0, 1]). `calibrated`: per layer, phase and batch, [min, "
                     "max] of the states.",
                     "`asymmetric`: 2^b levels spanning [lo, hi]. `symmetric`: 2^b-1 levels including 0 over "
                     "[-r, r].");
  keys.push_back({"hardware.adc.noise_sigma", ValueType::number, 0.0, 0, 1e6, false, {},
                  "Gaussian readout noise added before the ADC rounds (needs adc.enabled); unit: "
                  "`hardware.adc.noise_unit`."});
  keys.push_back({"hardware.adc.noise_unit", ValueType::choice, "lsb", 0, 0, false, {"lsb", "absolute"},
                  "`lsb`: noise_sigma in LSB of the ADC. `absolute`: in state units."});
  keys.push_back({"hardware.programming_noise.additive", ValueType::number, 0.0, 0, 1e3, false, {},
                  "Gaussian noise on each weight/bias write, sigma in weight units; fresh at every write."});
  keys.push_back({"hardware.programming_noise.multiplicative", ValueType::number, 0.0, 0, 10, false, {},
                  "Gaussian noise on each write proportional to the value: sigma * abs(w) (0.02: 2%)."});
  keys.push_back({"hardware.mismatch_sigma", ValueType::number, 0.0, 0, 1, false, {},
                  "Device-to-device mismatch: each weight/bias has a fixed gain 1 + sigma * N(0, 1), drawn once "
                  "from the seed."});
  keys.push_back({"hardware.keep_full_precision", ValueType::boolean, true, 0, 0, false, {},
                  "true: the optimizer keeps a full-precision copy and programs the device from it. false: the "
                  "device holds the only copy and updates continue from the written value."});
}

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> keys = [] {
  std::vector<KeySpec> keys = {
      {"seed", ValueType::integer, 1, 0, 9007199254740992.0, false, {},
       "Seeds every random draw (init, shuffling, beta signs); same seed, same run."},
      {"device", ValueType::choice, "auto", 0, 0, false, {"auto", "cpu", "cuda"},
       "Backend; `auto` picks CUDA when a GPU is visible. `--device` overrides it."},
      {"model.kind", ValueType::choice, "dense_hopfield", 0, 0, false,
       {"dense_hopfield", "conv_hopfield", "oscillator", "ising"},
       "The physical system trained: `dense_hopfield`, the layered Hopfield network of DESIGN.md §1; "
       "`conv_hopfield`, conv layers with 2x2 pooling (the `conv` section) then the dense layers of "
       "model.layers (Laborieux et al. 2021); `oscillator`, a layered network of coupled phase oscillators "
       "(section `oscillator`; needs gradient_flow dynamics and the mse cost); `ising`, a layered network of "
       "binary spins annealed by block Gibbs/Metropolis sweeps (the `ising` section; Laydevant et al. 2024)."},
      {"model.layers", ValueType::integer_list, json::array({784, 500, 10}), 1, 1 << 20, false, {},
       "Layer sizes. dense_hopfield: input, hidden..., output; the input matches the data's sample "
       "size. conv_hopfield: the dense layers after the conv stack, hidden..., output (e.g. [10]). "
       "The output matches the data's class count."},
      {"model.cost", ValueType::choice, "mse", 0, 0, false, {"mse", "cross_entropy"},
       "`mse`: the last layer is part of the energy, nudged by beta*1/2||s-y||^2. "
       "`cross_entropy`: the last weights are a softmax read-out of the last hidden layer, "
       "outside the energy (Laborieux et al. 2021)."},
      {"model.init_gain", ValueType::number, 1.0, 0, 100, true, {},
       "Weights and biases start uniform in +-gain/sqrt(fan_in)."},
      {"oscillator.shil", ValueType::number, 0.0, 0, 100, false, {},
       "model.kind = oscillator: S, the second-harmonic injection -(S/2) cos 2phi on every oscillator, "
       "which pulls phases towards 0 or pi (0: free phases)."},
      {"oscillator.input_scale", ValueType::number, 3.14159265358979, 0, 100, true, {},
       "model.kind = oscillator: the input x is clamped as the phases input_scale * x (pi: pixels in "
       "[0, 1] span phases 0 to pi)."},
      {"conv.input_shape", ValueType::integer_list, json::array({1, 28, 28}), 1, 1 << 16, false, {},
       "conv_hopfield: one sample's [channels, height, width]; their product is the data's sample size "
       "(NCHW, per sample contiguous)."},
      {"conv.channels", ValueType::integer_list, json::array({16, 32}), 1, 1 << 16, false, {},
       "conv_hopfield: output channels of each conv layer, input side first."},
      {"conv.kernel", ValueType::integer_list, json::array({3}), 1, 64, false, {},
       "conv_hopfield: square kernel size of each conv layer, or one for all."},
      {"conv.stride", ValueType::integer_list, json::array({1}), 1, 64, false, {},
       "conv_hopfield: stride of each conv layer, or one for all."},
      {"conv.padding", ValueType::integer_list, json::array({1}), 0, 64, false, {},
       "conv_hopfield: zero padding of each conv layer, or one for all."},
      {"conv.pool", ValueType::choice, "max", 0, 0, false, {"max", "avg", "none"},
       "conv_hopfield: 2x2 stride-2 pooling after every conv layer (`max`: through the argmax of the "
       "current state; `avg`: the window mean) or none. Pooled sizes must be even."},
      {"dynamics.integrator", ValueType::choice, "fixed_point", 0, 0, false,
       {"fixed_point", "gradient_flow", "csb"},
       "`fixed_point`: s <- rho(field). `gradient_flow`: projected Euler steps on the "
       "energy. `csb`: continuous simulated bifurcation, a momentum per unit (symplectic Euler, "
       "inelastic walls at 0 and 1)."},
      {"dynamics.order", ValueType::choice, "synchronous", 0, 0, false, {"synchronous", "asynchronous"},
       "Layer order of a step (dense_hopfield, conv_hopfield): `synchronous`, every field from the previous step; "
       "`asynchronous`, odd layers then even layers from the new odd ones (exact block minimisation for "
       "fixed_point)."},
      {"dynamics.nudge_integrator", ValueType::choice, "same", 0, 0, false,
       {"same", "fixed_point", "gradient_flow", "csb"}, "Integrator of the nudged phases; `same`: as the free phase."},
      {"dynamics.dt", ValueType::number, 0.5, 0, 1, true, {}, "Step size of gradient flow and cSB."},
      {"dynamics.t_free", ValueType::integer, 30, 1, 1000000, false, {}, "Free-phase steps (T1; the cap with a tolerance)."},
      {"dynamics.t_nudge", ValueType::integer, 10, 1, 1000000, false, {},
       "Steps of each nudged phase (T2), started from the free state."},
      {"dynamics.gamma", ValueType::number, 0.5, 0, 100, false, {}, "cSB damping of the momentum."},
      {"dynamics.a0", ValueType::number, 1.0, 0, 100, true, {}, "cSB gain of the position update, x += dt * a0 * y."},
      {"dynamics.pump", ValueType::choice, "none", 0, 0, false, {"none", "linear"},
       "cSB bifurcation pump: `linear` adds -(a0 - a(t)) (x - 1/2) to the force, a(t) ramping 0 -> a0 over "
       "each phase."},
      {"dynamics.noise", ValueType::number, 0.0, 0, 10, false, {},
       "Langevin noise sigma per unit and step (times sqrt(dt) for gradient flow and cSB; on the field "
       "for the fixed point)."},
      {"dynamics.tolerance", ValueType::number, 0.0, 0, 1, false, {},
       "Early exit: a phase ends when every system's largest unit change per step (per unit time for "
       "gradient flow and cSB) is below this. 0: always run to the step cap."},
      {"dynamics.check_every", ValueType::integer, 5, 1, 1000000, false, {},
       "Steps between convergence checks (each check reads one number per system back to the host)."},
      {"ising.temperature_start", ValueType::number, 2.0, 0, 1e6, true, {},
       "model.kind = ising: temperature of the first free-phase sweep; the free phase anneals geometrically to "
       "`ising.temperature_end` over dynamics.t_free sweeps."},
      {"ising.temperature_end", ValueType::number, 0.1, 0, 1e6, true, {},
       "model.kind = ising: temperature of the last free-phase sweep and of every sweep of the nudged phases "
       "(dynamics.t_nudge sweeps each, from the free state)."},
      {"ising.update", ValueType::choice, "gibbs", 0, 0, false, {"gibbs", "metropolis"},
       "model.kind = ising: the spin update of a sweep. `gibbs`: heat bath, s = +1 with probability "
       "1/(1+exp(-2f/T)). `metropolis`: flip with probability min(1, exp(-2sf/T))."},
      {"ising.relaxation", ValueType::choice, "annealing", 0, 0, false, {"annealing", "dsb"},
       "model.kind = ising: how a phase relaxes. `annealing`: block sweeps (odd layers, then even layers) "
       "over the temperature schedule. `dsb`: discrete simulated bifurcation (Goto et al. 2021), step "
       "dynamics.dt, gain dynamics.a0, c0 = 1, the pump ramping over the free phase; nudged phases start at "
       "rest from the free spins (the temperatures and ising.update do not apply)."},
      {"ising.spins_per_class", ValueType::integer, 1, 1, 1024, false, {},
       "model.kind = ising: output spins per class (the top layer has classes * this many); the prediction is "
       "the class with the largest mean spin."},
      {"ising.replicas", ValueType::integer, 1, 1, 4096, false, {},
       "model.kind = ising: independent annealing chains per sample; the update and the read-out average over "
       "them."},
      {"ep.beta", ValueType::number, 0.5, 0, 1000, true, {}, "Nudging strength beta > 0."},
      {"ep.nudging", ValueType::choice, "symmetric", 0, 0, false, {"symmetric", "one_sided"},
       "`symmetric`: phases at +beta and -beta (Laborieux et al. 2021). `one_sided`: +beta against "
       "the free state."},
      {"ep.random_sign", ValueType::boolean, false, 0, 0, false, {},
       "One-sided nudging: draw the sign of beta per batch."},
      {"optimizer.lr", ValueType::number_or_list, 0.05, 0, 100, false, {},
       "Learning rate: one number, or one per weight tensor (input side first)."},
      {"optimizer.momentum", ValueType::number, 0.9, 0, 1, false, {},
       "SGD momentum (PyTorch convention); must be below 1."},
      {"optimizer.weight_decay", ValueType::number, 0.0, 0, 1, false, {}, "L2 weight decay."},
      {"optimizer.schedule", ValueType::choice, "constant", 0, 0, false, {"constant", "cosine"},
       "Learning-rate schedule over the epochs; `cosine` decays to 0 at the last epoch."},
      {"training.epochs", ValueType::integer, 30, 1, 1000000, false, {}, "Epochs to train."},
      {"training.batch_size", ValueType::integer, 128, 1, 65536, false, {},
       "Systems relaxed in parallel per training step; the last partial batch of an epoch is "
       "dropped."},
      {"training.eval_batch_size", ValueType::integer, 1000, 1, 65536, false, {},
       "Batch size for evaluation (free phase only)."},
      {"training.prefetch_batches", ValueType::integer, 3, 2, 64, false, {},
       "Batches the loader thread prepares ahead of compute."},
      {"training.gemm_precision", ValueType::choice, "fp32", 0, 0, false, {"fp32", "tf32", "bf16"},
       "Precision of the GEMM products (states, fields and updates stay FP32). `fp32`: exact, the reference. "
       "`tf32` / `bf16`: inputs rounded to 10 / 7 mantissa bits, FP32 accumulation; tensor cores on CUDA "
       "(sm_80+), emulated by rounding on the CPU (slower there: for measuring accuracy)."},
      {"data.name", ValueType::choice, "fashion_mnist", 0, 0, false,
       {"fashion_mnist", "mnist", "cifar10"}, "Dataset."},
      {"data.dir", ValueType::string, "", 0, 0, false, {},
       "Directory of the data files; empty: /usr/share/datasets/fashion-mnist for fashion_mnist "
       "(Debian package dataset-fashion-mnist), required for the others."},
      {"data.normalize", ValueType::choice, "unit", 0, 0, false, {"unit", "standardize"},
       "`unit`: pixels / 255 in [0, 1]. `standardize`: per-channel mean 0, std 1 over the "
       "training set."},
      {"data.augment_crop_padding", ValueType::integer, 0, 0, 64, false, {},
       "Training set only: pad each image by this many black pixels per side and crop back to its size at a "
       "random offset, keyed on (seed, epoch, sample). 0: off; 4: the usual CIFAR-10 setting."},
      {"data.augment_flip", ValueType::boolean, false, 0, 0, false, {},
       "Training set only: mirror each image left-right with probability 1/2, keyed on (seed, epoch, "
       "sample)."},
      {"data.train_limit", ValueType::integer, 0, 0, 1e12, false, {},
       "Use only the first N training samples (0: all)."},
      {"data.test_limit", ValueType::integer, 0, 0, 1e12, false, {},
       "Use only the first N test samples (0: all)."},
  };
  add_hardware_keys(keys);
  return keys;
  }();
  return keys;
}

const KeySpec* find_spec(const std::string& key) {
  for (const KeySpec& spec : schema())
    if (key == spec.key) return &spec;
  return nullptr;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_key_message(const std::string& source, const std::string& key) {
  std::string best;
  std::size_t best_distance = 4;  // suggest only near misses
  for (const KeySpec& spec : schema()) {
    const std::size_t distance = edit_distance(key, spec.key);
    if (distance < best_distance) best_distance = distance, best = spec.key;
  }
  std::string message = source + ": unknown config key '" + key + "'";
  if (!best.empty()) message += " (did you mean '" + best + "'?)";
  return message;
}

std::string range_text(const KeySpec& spec) {
  std::ostringstream text;
  text << std::setprecision(17) << (spec.min_exclusive ? "(" : "[") << spec.min << ", " << spec.max << "]";
  return text.str();
}

void check_number(const KeySpec& spec, const json& value, const std::string& source,
                  const std::string& where) {
  const std::string name = source + ": " + where;
  if (!value.is_number()) throw ConfigError(name + " must be a number, got " + value.dump());
  const double x = value.get<double>();
  if (spec.type == ValueType::integer || spec.type == ValueType::integer_list) {
    if (!value.is_number_integer() && std::floor(x) != x)
      throw ConfigError(name + " must be an integer, got " + value.dump());
  }
  const bool below = spec.min_exclusive ? x <= spec.min : x < spec.min;
  if (!std::isfinite(x) || below || x > spec.max)
    throw ConfigError(name + " = " + value.dump() + " is out of range " + range_text(spec));
}

void check_value(const KeySpec& spec, const json& value, const std::string& source) {
  const std::string name = source + ": " + spec.key;
  switch (spec.type) {
    case ValueType::integer:
    case ValueType::number:
      check_number(spec, value, source, spec.key);
      return;
    case ValueType::boolean:
      if (!value.is_boolean()) throw ConfigError(name + " must be true or false, got " + value.dump());
      return;
    case ValueType::string:
      if (!value.is_string()) throw ConfigError(name + " must be a string, got " + value.dump());
      return;
    case ValueType::choice: {
      const bool ok = value.is_string() && std::count(spec.choices.begin(), spec.choices.end(),
                                                      value.get<std::string>()) > 0;
      if (!ok) {
        std::string allowed;
        for (const std::string& choice : spec.choices) allowed += (allowed.empty() ? "" : ", ") + choice;
        throw ConfigError(name + " = " + value.dump() + " is not one of: " + allowed);
      }
      return;
    }
    case ValueType::integer_list:
    case ValueType::number_or_list: {
      if (spec.type == ValueType::number_or_list && value.is_number()) {
        check_number(spec, value, source, spec.key);
        return;
      }
      if (!value.is_array() || value.empty())
        throw ConfigError(name + " must be a non-empty array" +
                          (spec.type == ValueType::number_or_list ? " or a number" : "") +
                          ", got " + value.dump());
      for (std::size_t i = 0; i < value.size(); ++i)
        check_number(spec, value[i], source, std::string(spec.key) + "[" + std::to_string(i) + "]");
      return;
    }
  }
}

json::json_pointer pointer_of(const std::string& dotted) {
  std::string path = "/" + dotted;
  std::replace(path.begin(), path.end(), '.', '/');
  return json::json_pointer(path);
}

// Flattens `user` into dotted keys, rejecting unknown ones and misplaced sections.
void collect_leaves(const json& node, const std::string& prefix, const std::string& source,
                    json& resolved) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    const KeySpec* spec = find_spec(key);
    if (spec) {
      check_value(*spec, it.value(), source);
      resolved[pointer_of(key)] = it.value();
      continue;
    }
    const bool is_section = std::any_of(schema().begin(), schema().end(), [&](const KeySpec& s) {
      return s.key.rfind(key + ".", 0) == 0;
    });
    if (is_section && it.value().is_object()) {
      collect_leaves(it.value(), key, source, resolved);
    } else if (is_section) {
      throw ConfigError(source + ": '" + key + "' must be an object (a section), got " + it.value().dump());
    } else {
      throw ConfigError(unknown_key_message(source, key));
    }
  }
}

json defaults() {
  json result = json::object();
  for (const KeySpec& spec : schema()) result[pointer_of(spec.key)] = spec.default_value;
  return result;
}

}  // namespace

Config parse_config(const json& user, const std::string& source) {
  if (!user.is_object()) throw ConfigError(source + ": a config must be a JSON object");
  json resolved = defaults();
  json given = json::object();
  collect_leaves(user, "", source, given);
  resolved.merge_patch(given);

  auto at = [&](const char* key) -> const json& { return resolved[pointer_of(key)]; };
  Config config;
  config.seed = at("seed").get<std::uint64_t>();
  config.device = at("device").get<std::string>();

  config.model.kind = at("model.kind").get<std::string>();
  config.model.layers = at("model.layers").get<std::vector<int>>();
  config.model.cost = at("model.cost") == "cross_entropy" ? CostKind::cross_entropy : CostKind::mse;
  config.model.init_gain = at("model.init_gain").get<float>();
  const bool conv = config.model.kind == "conv_hopfield";
  const std::size_t minimum_layers = conv ? 1 : config.model.cost == CostKind::cross_entropy ? 3 : 2;
  if (config.model.layers.size() < minimum_layers)
    throw ConfigError(source + ": model.layers needs at least " + std::to_string(minimum_layers) +
                      " sizes with model.cost = " + at("model.cost").dump() + ", got " +
                      at("model.layers").dump());
  if (config.model.layers.back() > kMaxClasses)
    throw ConfigError(source + ": model.layers: the output layer has " +
                      std::to_string(config.model.layers.back()) + " units; at most " +
                      std::to_string(kMaxClasses) + " classes are supported");

  config.oscillator.shil = at("oscillator.shil").get<float>();
  config.oscillator.input_scale = at("oscillator.input_scale").get<float>();
  ConvConfig& conv_config = config.model.conv;
  conv_config.input_shape = at("conv.input_shape").get<std::vector<int>>();
  conv_config.channels = at("conv.channels").get<std::vector<int>>();
  conv_config.pool = at("conv.pool").get<std::string>();
  if (conv_config.input_shape.size() != 3)
    throw ConfigError(source + ": conv.input_shape must be [channels, height, width], got " +
                      at("conv.input_shape").dump());
  const std::size_t conv_layers = conv_config.channels.size();
  for (auto [key, values] : {std::pair<const char*, std::vector<int>*>{"conv.kernel", &conv_config.kernel},
                             {"conv.stride", &conv_config.stride},
                             {"conv.padding", &conv_config.padding}}) {
    *values = at(key).get<std::vector<int>>();
    if (values->size() == 1) values->resize(conv_layers, values->front());
    if (conv && values->size() != conv_layers)
      throw ConfigError(source + ": " + key + " has " + std::to_string(values->size()) +
                        " entries but conv.channels " + at("conv.channels").dump() + " has " +
                        std::to_string(conv_layers) + " conv layers (give one entry, or one per layer)");
  }
  if (conv) {
    try {
      conv_hopfield_shape(config.model).validate();
    } catch (const std::invalid_argument& error) {
      throw ConfigError(source + ": " + error.what());
    }
  }

  auto integrator_of = [](const std::string& name) {
    if (name == "gradient_flow") return Integrator::gradient_flow;
    if (name == "csb") return Integrator::csb;
    return Integrator::fixed_point;
  };
  config.dynamics.integrator = integrator_of(at("dynamics.integrator").get<std::string>());
  const std::string nudge_integrator = at("dynamics.nudge_integrator").get<std::string>();
  config.dynamics.nudge_integrator =
      nudge_integrator == "same" ? config.dynamics.integrator : integrator_of(nudge_integrator);
  config.dynamics.order =
      at("dynamics.order") == "asynchronous" ? UpdateOrder::asynchronous : UpdateOrder::synchronous;
  config.dynamics.dt = at("dynamics.dt").get<float>();
  config.dynamics.t_free = at("dynamics.t_free").get<int>();
  config.dynamics.t_nudge = at("dynamics.t_nudge").get<int>();
  config.dynamics.gamma = at("dynamics.gamma").get<float>();
  config.dynamics.a0 = at("dynamics.a0").get<float>();
  config.dynamics.pump = at("dynamics.pump") == "linear";
  config.dynamics.noise = at("dynamics.noise").get<float>();
  config.dynamics.tolerance = at("dynamics.tolerance").get<float>();
  config.dynamics.check_every = at("dynamics.check_every").get<int>();

  if (config.model.kind == "oscillator") {
    if (config.model.cost != CostKind::mse)
      throw ConfigError(source + ": model.kind = \"oscillator\" reads its output as (1 + cos phi)/2 with the mse "
                        "cost; model.cost = " + at("model.cost").dump() + " is not supported");
    if (config.dynamics.integrator != Integrator::gradient_flow ||
        config.dynamics.nudge_integrator != Integrator::gradient_flow)
      throw ConfigError(source + ": model.kind = \"oscillator\" relaxes by gradient flow on the phases: set "
                        "dynamics.integrator (and dynamics.nudge_integrator) to \"gradient_flow\"");
  }
  config.ising.temperature_start = at("ising.temperature_start").get<float>();
  config.ising.temperature_end = at("ising.temperature_end").get<float>();
  config.ising.metropolis = at("ising.update") == "metropolis";
  config.ising.dsb = at("ising.relaxation") == "dsb";
  config.ising.spins_per_class = at("ising.spins_per_class").get<int>();
  config.ising.replicas = at("ising.replicas").get<int>();
  if (config.model.kind == "ising" && config.model.cost != CostKind::mse)
    throw ConfigError(source + ": model.kind = \"ising\" has its own output cost (the field on the output spins); "
                      "model.cost must be \"mse\", got " + at("model.cost").dump());

  config.ep.beta = at("ep.beta").get<float>();
  config.ep.symmetric = at("ep.nudging").get<std::string>() == "symmetric";
  config.ep.random_sign = at("ep.random_sign").get<bool>();
  if (config.model.kind == "dense_hopfield" && config.model.cost == CostKind::mse && config.ep.symmetric &&
      config.ep.beta >= 1.0f &&
      config.dynamics.nudge_integrator == Integrator::fixed_point)
    throw ConfigError(source + ": ep.beta = " + at("ep.beta").dump() +
                      " must be below 1 with symmetric nudging, model.cost = \"mse\" and fixed-point nudged phases: at -beta the "
                      "nudged energy of an output unit, (1 - beta)/2 s^2 + ..., has no minimum inside [0, 1]");

  const json& lr = at("optimizer.lr");
  config.optimizer.learning_rates =
      lr.is_number() ? std::vector<float>{lr.get<float>()} : lr.get<std::vector<float>>();
  config.optimizer.single_rate = lr.is_number();
  // The dense model's tensor count follows from model.layers; other models check
  // theirs when they are built (Trainer).
  const std::size_t weight_tensors = config.model.layers.size() - 1;
  if ((config.model.kind == "dense_hopfield" || config.model.kind == "oscillator") && !lr.is_number() &&
      lr.size() != weight_tensors)
    throw ConfigError(source + ": optimizer.lr has " + std::to_string(lr.size()) + " entries but model.layers " +
                      at("model.layers").dump() + " has " + std::to_string(weight_tensors) + " weight tensors");
  config.optimizer.momentum = at("optimizer.momentum").get<float>();
  if (config.optimizer.momentum >= 1.0f)
    throw ConfigError(source + ": optimizer.momentum = " + at("optimizer.momentum").dump() +
                      " must be below 1");
  config.optimizer.weight_decay = at("optimizer.weight_decay").get<float>();
  config.optimizer.cosine_schedule = at("optimizer.schedule").get<std::string>() == "cosine";

  config.training.epochs = at("training.epochs").get<int>();
  config.training.batch_size = at("training.batch_size").get<int>();
  config.training.eval_batch_size = at("training.eval_batch_size").get<int>();
  config.training.prefetch_batches = at("training.prefetch_batches").get<int>();
  const std::string precision = at("training.gemm_precision").get<std::string>();
  config.training.gemm_precision = precision == "tf32"   ? GemmPrecision::tf32
                                   : precision == "bf16" ? GemmPrecision::bf16
                                                         : GemmPrecision::fp32;

  config.data.name = at("data.name").get<std::string>();
  config.data.dir = at("data.dir").get<std::string>();
  config.data.standardize = at("data.normalize").get<std::string>() == "standardize";
  config.data.train_limit = at("data.train_limit").get<std::int64_t>();
  config.data.test_limit = at("data.test_limit").get<std::int64_t>();
  config.data.augmentation.crop_padding = at("data.augment_crop_padding").get<int>();
  config.data.augmentation.flip = at("data.augment_flip").get<bool>();

  config.hardware = hardware_config_from(resolved["hardware"], source);

  config.resolved = resolved;
  return config;
}

json read_config_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw ConfigError(path + ": " +
                      (std::filesystem::exists(path, error) ? "not a regular file" : "no such config file"));
  std::ifstream file(path);
  if (!file) throw ConfigError(path + ": cannot open config file");
  try {
    return json::parse(file, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& error) {
    throw ConfigError(path + ": not valid JSON: " + error.what());
  }
}

void apply_override(json& user, const std::string& assignment) {
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    throw ConfigError("--set '" + assignment + "': expected key=value, e.g. training.epochs=5");
  const std::string key = assignment.substr(0, equals);
  const std::string text = assignment.substr(equals + 1);
  const KeySpec* spec = find_spec(key);
  if (!spec) throw ConfigError(unknown_key_message("--set", key));
  json value;
  if (spec->type == ValueType::string || spec->type == ValueType::choice) {
    value = text;
  } else {
    try {
      value = json::parse(text);
    } catch (const json::parse_error&) {
      throw ConfigError("--set " + key + "=" + text + ": '" + text + "' is not a valid value");
    }
  }
  check_value(*spec, value, "--set");
  // Every enclosing section must be an object (or absent) to take the key.
  json* node = &user;
  for (std::size_t dot = key.find('.'), start = 0; dot != std::string::npos; start = dot + 1, dot = key.find('.', start)) {
    const std::string section = key.substr(start, dot - start);
    if (!node->is_object())
      throw ConfigError("--set " + key + ": '" + key.substr(0, start ? start - 1 : 0) + "' is not a section");
    json& child = (*node)[section];
    if (child.is_null()) child = json::object();
    if (!child.is_object())
      throw ConfigError("--set " + key + ": '" + key.substr(0, dot) + "' must be an object (a section), got " +
                        child.dump());
    node = &child;
  }
  user[pointer_of(key)] = value;
}

HardwareConfig parse_hardware_config(const json& section, const std::string& source) {
  return parse_config(json{{"hardware", section}}, source).hardware;
}

std::string config_reference_markdown() {
  std::ostringstream out;
  out << "| key | default | allowed | meaning |\n|---|---|---|---|\n";
  for (const KeySpec& spec : schema()) {
    std::string allowed;
    switch (spec.type) {
      case ValueType::choice:
        for (const std::string& choice : spec.choices) allowed += (allowed.empty() ? "" : ", ") + ("`" + choice + "`");
        break;
      case ValueType::boolean: allowed = "true, false"; break;
      case ValueType::string: allowed = "path"; break;
      case ValueType::integer_list: allowed = "integers in " + range_text(spec); break;
      case ValueType::number_or_list: allowed = "number or list in " + range_text(spec); break;
      default: allowed = range_text(spec); break;
    }
    out << "| `" << spec.key << "` | `" << spec.default_value.dump() << "` | " << allowed << " | "
        << spec.help << " |\n";
  }
  return out.str();
}

}  // namespace eqprop
