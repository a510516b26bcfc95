#include "engine/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <limits>
#include <mutex>
#include <sstream>

#include "engine/captured_step.h"
#include "models/json_limits.h"
#include "models/model_registry.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

using nlohmann::json;

// One name <-> value table per choice key of the run-wide sections
// (models/config_key.h); the model kinds and the hardware section hold their own.
constexpr Choice<CostKind> kCosts[] = {{"mse", CostKind::mse}, {"cross_entropy", CostKind::cross_entropy}};
constexpr Choice<bool> kActivations[] = {{"hard_sigmoid", false}, {"clipped_relu", true}};  // true: c = activation_max
constexpr Choice<Integrator> kIntegrators[] = {{"fixed_point", Integrator::fixed_point},
                                               {"gradient_flow", Integrator::gradient_flow},
                                               {"csb", Integrator::csb}};
constexpr const char* kSameIntegrator = "same";  // dynamics.nudge_integrator: as the free phase
constexpr Choice<UpdateOrder> kOrders[] = {{"synchronous", UpdateOrder::synchronous},
                                           {"asynchronous", UpdateOrder::asynchronous}};  // DynamicsConfig::order
constexpr Choice<bool> kPumps[] = {{"none", false}, {"linear", true}};           // DynamicsConfig::pump
constexpr Choice<bool> kNudgings[] = {{"symmetric", true}, {"one_sided", false}};  // EpConfig::symmetric
constexpr Choice<bool> kSchedules[] = {{"constant", false}, {"cosine", true}};  // OptimizerConfig::cosine_schedule
constexpr Choice<GemmPrecision> kGemmPrecisions[] = {
    {"fp32", GemmPrecision::fp32}, {"tf32", GemmPrecision::tf32}, {"bf16", GemmPrecision::bf16}};
constexpr Choice<ConvolutionPath> kConvPaths[] = {
    {"auto", ConvolutionPath::automatic}, {"library", ConvolutionPath::library},
    {"library_only", ConvolutionPath::library_only}, {"im2col", ConvolutionPath::im2col}};
constexpr Choice<RelaxationPath> kRelaxationPaths[] = {
    {"auto", RelaxationPath::automatic}, {"fused", RelaxationPath::fused}, {"gemm", RelaxationPath::gemm}};
constexpr Choice<CudaGraphMode> kCudaGraphModes[] = {
    {"auto", CudaGraphMode::automatic}, {"on", CudaGraphMode::on}, {"off", CudaGraphMode::off}};
constexpr Choice<bool> kTrainingAlgorithms[] = {{"ep", false}, {"implicit", true}};  // TrainingConfig::implicit
constexpr Choice<bool> kNormalizations[] = {{"unit", false}, {"standardize", true}};  // DataConfig::standardize

std::vector<std::string> nudge_integrator_names() {
  std::vector<std::string> names = choice_names(kIntegrators);
  names.insert(names.begin(), kSameIntegrator);
  return names;
}

// model.kind: the registered kinds, the first the default; its help lists them.
ConfigKey model_kind_key() {
  ConfigKey key{"model.kind", ConfigValueType::choice, model_kinds().front().name, 0, 0, false, {}, ""};
  for (const ModelKind& kind : model_kinds()) {
    key.choices.push_back(kind.name);
    key.help += (key.help.empty() ? "The physical system trained: `" : "; `") + kind.name + "`, " + kind.help;
  }
  key.help += ".";
  return key;
}

// The run-wide keys, the model kinds' keys after the model section, the hardware
// section last (the order of the reference table).
std::vector<ConfigKey> build_schema() {
  std::vector<ConfigKey> keys = {
      {"seed", ConfigValueType::integer, 1, 0, 9007199254740992.0, false, {},
       "Seeds every random draw (init, shuffling, beta signs); same seed, same run."},
      {"device", ConfigValueType::choice, "auto", 0, 0, false, {"auto", "cpu", "cuda"},
       "Backend; `auto` picks CUDA when a GPU is visible. `--device` overrides it."},
      model_kind_key(),
      {"model.layers", ConfigValueType::integer_list, json::array({784, 500, 10}), 1, 1 << 20, false, {},
       "Layer sizes. dense_hopfield: input, hidden..., output; the input matches the data's sample "
       "size. conv_hopfield: the dense layers after the conv stack, hidden..., output (e.g. [10]). "
       "The output matches the data's class count."},
      {"model.cost", ConfigValueType::choice, "mse", 0, 0, false, choice_names(kCosts),
       "`mse`: the last layer is part of the energy, nudged by beta*1/2||s-y||^2. "
       "`cross_entropy`: the last weights are a softmax read-out of the last hidden layer, "
       "outside the energy (Laborieux et al. 2021)."},
      {"model.init_gain", ConfigValueType::number, 1.0, 0, 100, true, {},
       "Weights and biases start uniform in +-gain/sqrt(fan_in)."},
      {"model.activation", ConfigValueType::choice, "hard_sigmoid", 0, 0, false, choice_names(kActivations),
       "rho of the Hopfield energy (dense_hopfield, conv_hopfield; other kinds refuse `clipped_relu`), states kept "
       "in [0, c]: `hard_sigmoid`, clip(s, 0, 1); `clipped_relu`, clip(s, 0, c) with c = model.activation_max "
       "(ReLU6 at c = 6, the Hopfield-ResNets of Vinayak & Srinivasan 2025)."},
      {"model.activation_max", ConfigValueType::number, 6.0, 0, 1e6, true, {},
       "The bound c of model.activation = `clipped_relu`."},
      {"dynamics.integrator", ConfigValueType::choice, "fixed_point", 0, 0, false, choice_names(kIntegrators),
       "`fixed_point`: s <- rho(field). `gradient_flow`: projected Euler steps on the "
       "energy. `csb`: continuous simulated bifurcation, a momentum per unit (symplectic Euler, "
       "inelastic walls at 0 and 1)."},
      {"dynamics.order", ConfigValueType::choice, "synchronous", 0, 0, false, choice_names(kOrders),
       "Layer order of a step (dense_hopfield, conv_hopfield, oscillator; predictive_coding: asynchronous only; "
       "the ising kind's annealing sweeps are asynchronous whatever this says): "
       "`synchronous`, every field from the previous step; "
       "`asynchronous`, odd layers then even layers from the new odd ones (exact block minimisation for "
       "fixed_point)."},
      {"dynamics.nudge_integrator", ConfigValueType::choice, kSameIntegrator, 0, 0, false, nudge_integrator_names(),
       "Integrator of the nudged phases; `same`: as the free phase."},
      {"dynamics.dt", ConfigValueType::number, 0.5, 0, 1, true, {}, "Step size of gradient flow and cSB."},
      {"dynamics.t_free", ConfigValueType::integer, 30, 1, 1000000, false, {},
       "Free-phase steps (T1; the cap with a tolerance)."},
      {"dynamics.t_nudge", ConfigValueType::integer, 10, 1, 1000000, false, {},
       "Steps of each nudged phase (T2), started from the free state."},
      {"dynamics.gamma", ConfigValueType::number, 0.5, 0, 100, false, {}, "cSB damping of the momentum."},
      {"dynamics.a0", ConfigValueType::number, 1.0, 0, 100, true, {},
       "cSB gain of the position update, x += dt * a0 * y."},
      {"dynamics.pump", ConfigValueType::choice, "none", 0, 0, false, choice_names(kPumps),
       "cSB bifurcation pump: `linear` adds -(a0 - a(t)) x to the force, a(t) ramping 0 -> a0 over the free "
       "phase (a0 on its last step); nudged phases run at a0 from the free state."},
      {"dynamics.noise", ConfigValueType::number, 0.0, 0, 10, false, {},
       "Langevin noise sigma per unit and step (times sqrt(dt) for gradient flow and cSB; on the field "
       "for the fixed point)."},
      {"dynamics.temperature", ConfigValueType::number, 0.0, 0, 100, false, {},
       "Langevin noise as a temperature T instead of dynamics.noise (set one of the two): the sigma of each "
       "integrator whose stationary distribution is exp(-E/T), sqrt(2T) for gradient flow, sqrt(2T gamma/a0) "
       "on cSB's momentum (needs dynamics.gamma > 0), sqrt(T) on the fixed point's field. Not the Ising model's."},
      {"dynamics.tolerance", ConfigValueType::number, 0.0, 0, 1, false, {},
       "Early exit: a phase ends when every system's largest unit change per step (per unit time for "
       "gradient flow and cSB) is below this. 0: always run to the step cap."},
      {"dynamics.check_every", ConfigValueType::integer, 5, 1, 1000000, false, {},
       "Steps between convergence checks (each check reads one number per system back to the host)."},
      {"ep.beta", ConfigValueType::number, 0.5, 0, 1000, true, {}, "Nudging strength beta > 0."},
      {"ep.nudging", ConfigValueType::choice, "symmetric", 0, 0, false, choice_names(kNudgings),
       "`symmetric`: phases at +beta and -beta (Laborieux et al. 2021). `one_sided`: +beta against "
       "the free state."},
      {"ep.random_sign", ConfigValueType::boolean, false, 0, 0, false, {},
       "One-sided nudging: draw the sign of beta per batch."},
      {"optimizer.lr", ConfigValueType::number_or_list, 0.05, 0, 100, false, {},
       "Learning rate: one number, or one per weight tensor (input side first)."},
      {"optimizer.momentum", ConfigValueType::number, 0.9, 0, 1, false, {},
       "SGD momentum (PyTorch convention); must be below 1."},
      {"optimizer.weight_decay", ConfigValueType::number, 0.0, 0, 1, false, {}, "L2 weight decay."},
      {"optimizer.schedule", ConfigValueType::choice, "constant", 0, 0, false, choice_names(kSchedules),
       "Learning-rate schedule over the epochs; `cosine` decays to 0 at the last epoch."},
      {"training.epochs", ConfigValueType::integer, 30, 1, 1000000, false, {}, "Epochs to train."},
      {"training.batch_size", ConfigValueType::integer, 128, 1, 65536, false, {},
       "Systems relaxed in parallel per training step; the last partial batch of an epoch is "
       "dropped."},
      {"training.eval_batch_size", ConfigValueType::integer, 1000, 1, 65536, false, {},
       "Batch size for evaluation (free phase only)."},
      {"training.prefetch_batches", ConfigValueType::integer, 3, 2, 64, false, {},
       "Batches the loader thread prepares ahead of compute."},
      {"training.threads", ConfigValueType::integer, 0, 0, 4096, false, {},
       "CPU threads of a training step. 0 (auto): up to OMP_NUM_THREADS (default: the cores), the team size "
       "timed between steps and the faster kept, so a core taken by another process is given up "
       "(engine/thread_team.h). N: always N. Same results at any count; the GPU ignores it."},
      {"training.gemm_precision", ConfigValueType::choice, "fp32", 0, 0, false, choice_names(kGemmPrecisions),
       "Precision of the GEMM products (states, fields and updates stay FP32). `fp32`: exact, the reference. "
       "`tf32` / `bf16`: inputs rounded to 10 / 7 mantissa bits, FP32 accumulation; tensor cores on CUDA "
       "(sm_80+); on the CPU bf16 runs on oneDNN (AMX or AVX-512 bf16, as the CPU has) where a product's rows are long enough (n k >= 32768) "
       "and both are emulated by rounding elsewhere, and on CPUs without those instructions (slower than fp32: for "
       "measuring accuracy). The run's header and `eqprop bench` (`precision`) say which."},
      {"training.conv_path", ConfigValueType::choice, "auto", 0, 0, false, choice_names(kConvPaths),
       "How convolutions run: `library` (oneDNN on the CPU, cuDNN on CUDA, where built with "
       "them; the few shapes whose library kernel is measured slower, such as fp32 convolutions onto a 2x2 plane "
       "on AVX2, take im2col + GEMM), `library_only` (every convolution on the library), `im2col` (im2col + GEMM, "
       "the bit-exact reference) or `auto` (the library for bf16 GEMMs, im2col otherwise; im2col where no library). "
       "cuDNN's bf16 convolutions round their results to bf16 as well (2^-9 of each; DESIGN.md, \"Convolutions\")."},
      {"training.relaxation_path", ConfigValueType::choice, "auto", 0, 0, false, choice_names(kRelaxationPaths),
       "How a model with a fused relaxation (`dense_hopfield`, `oscillator`, `ising`) relaxes a phase: `fused` (one "
       "launch runs all its steps, the states in block-shared memory; synchronous fixed-point or gradient-flow "
       "phases without noise, early exit, ADC read-out or the cross-entropy nudge, or the Ising network's annealing "
       "sweeps, at most 4 state layers: others take the GEMM path), `gemm` (GEMMs and a fused step op per step) or `auto` (fused only where measured faster: "
       "perf/relaxation_path_crossover.sh). The paths agree up to summation order."},
      {"training.cuda_graphs", ConfigValueType::choice, "auto", 0, 0, false, choice_names(kCudaGraphModes),
       "Record the training step once as a CUDA graph and replay it every batch (the per-step values, learning "
       "rate, metric slot and the step number that keys Langevin noise and the hardware model's draws, are read "
       "from a device block; each sign of a random beta has its own recording). `on`: refused for a config whose "
       "step cannot be recorded (early exit, the implicit algorithm, a model kind with host reads or per-step "
       "keys in its step). `auto`: off until a GPU run has shown replayed "
       "steps equal to direct ones (engine/captured_step.h); the run header says which. The CPU backend runs every step directly. Same results."},
      {"training.algorithm", ConfigValueType::choice, "ep", 0, 0, false, choice_names(kTrainingAlgorithms),
       "How the gradient is computed. `ep`: Equilibrium Propagation (the nudged phases of `ep.*`). `implicit`: "
       "the exact gradient of the loss at the free fixed point by implicit differentiation (dense_hopfield, "
       "conv_hopfield and oscillator, DESIGN.md §1; predictive_coding and conv_predictive_coding, where it is backprop through the forward pass): no nudged phase, `training.adjoint_iterations` steps of the adjoint system."},
      {"training.adjoint_iterations", ConfigValueType::integer, 50, 1, 100000, false, {},
       "Steps of the adjoint system of `training.algorithm = implicit`: Jacobi steps of (I - K M) mu = dL/ds for "
       "the Hopfield kinds, the free phase's gradient-flow step linearised (mu <- mu - dt (H mu - dC/dphi)) for "
       "the oscillator."},
      {"data.name", ConfigValueType::choice, "fashion_mnist", 0, 0, false,
       {"fashion_mnist", "mnist", "cifar10"}, "Dataset."},
      {"data.dir", ConfigValueType::string, "", 0, 0, false, {},
       "Directory of the data files; empty: /usr/share/datasets/fashion-mnist for fashion_mnist "
       "(Debian package dataset-fashion-mnist), required for the others."},
      {"data.normalize", ConfigValueType::choice, "unit", 0, 0, false, choice_names(kNormalizations),
       "`unit`: pixels / 255 in [0, 1]. `standardize`: per-channel mean 0, std 1 over the "
       "training set."},
      {"data.augment_crop_padding", ConfigValueType::integer, 0, 0, 64, false, {},
       "Training set only: pad each image by this many black pixels per side and crop back to its size at a "
       "random offset, keyed on (seed, epoch, sample). 0: off; 4: the usual CIFAR-10 setting."},
      {"data.augment_flip", ConfigValueType::boolean, false, 0, 0, false, {},
       "Training set only: mirror each image left-right with probability 1/2, keyed on (seed, epoch, "
       "sample)."},
      {"data.train_limit", ConfigValueType::integer, 0, 0, 1e12, false, {},
       "Use only the first N training samples (0: all)."},
      {"data.test_limit", ConfigValueType::integer, 0, 0, 1e12, false, {},
       "Use only the first N test samples (0: all)."},
  };
  // The model kinds' sections follow the model section.
  auto after_model =
      std::find_if(keys.begin(), keys.end(), [](const ConfigKey& k) { return k.key == "dynamics.integrator"; });
  for (const ModelKind& kind : model_kinds())
    after_model = keys.insert(after_model, kind.keys.begin(), kind.keys.end()) + kind.keys.size();
  for (ConfigKey& key : hardware_config_keys()) keys.push_back(std::move(key));
  for (std::size_t i = 0; i < keys.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (keys[i].key == keys[j].key) throw ConfigError("config key " + keys[i].key + " is declared twice");
  return keys;
}

// Rebuilt when a model kind is registered.
const std::vector<ConfigKey>& schema() {
  static std::mutex mutex;
  static std::vector<ConfigKey> keys;
  static std::size_t built_for = static_cast<std::size_t>(-1);
  const std::lock_guard<std::mutex> lock(mutex);
  if (built_for != model_registry_generation()) {
    keys = build_schema();
    built_for = model_registry_generation();
  }
  return keys;
}

const ConfigKey* find_spec(const std::string& key) {
  for (const ConfigKey& spec : schema())
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

// Keys longer than this get no suggestion: the edit distance is quadratic in the
// key's length (a multi-megabyte key would take seconds), and no near miss of a
// schema key is that long.
constexpr std::size_t kMaxSuggestedKeyLength = 64;

std::string unknown_key_message(const std::string& source, const std::string& key) {
  std::string best;
  std::size_t best_distance = 4;  // suggest only near misses
  if (key.size() <= kMaxSuggestedKeyLength)
    for (const ConfigKey& spec : schema()) {
      const std::size_t distance = edit_distance(key, spec.key);
      if (distance < best_distance) best_distance = distance, best = spec.key;
    }
  std::string message = source + ": unknown config key '" + excerpt(key) + "'";
  if (!best.empty()) message += " (did you mean '" + best + "'?)";
  return message;
}

std::string range_text(const ConfigKey& spec) {
  std::ostringstream text;
  text << std::setprecision(17) << (spec.min_exclusive ? "(" : "[") << spec.min << ", " << spec.max << "]";
  return text.str();
}

// A JSON integer against the key's range, exactly: as a double 2^53 + 1 rounds to
// 2^53 and would pass a bound of 2^53. Integer keys' bounds are whole numbers
// inside int64 (models/config_key.h).
bool integer_out_of_range(const ConfigKey& spec, const json& value) {
  if (value.is_number_unsigned() &&
      value.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return true;
  const std::int64_t n = value.is_number_unsigned() ? static_cast<std::int64_t>(value.get<std::uint64_t>())
                                                     : value.get<std::int64_t>();
  const auto lowest = static_cast<std::int64_t>(spec.min_exclusive ? std::floor(spec.min) + 1 : std::ceil(spec.min));
  const auto highest = static_cast<std::int64_t>(std::floor(spec.max));
  return n < lowest || n > highest;
}

void check_number(const ConfigKey& spec, const json& value, const std::string& source,
                  const std::string& where) {
  const std::string name = source + ": " + where;
  if (!value.is_number()) throw ConfigError(name + " must be a number, got " + excerpt_json(value));
  const double x = value.get<double>();
  const bool integral = spec.type == ConfigValueType::integer || spec.type == ConfigValueType::integer_list ||
                        spec.type == ConfigValueType::integer_pairs;
  if (integral) {
    if (!value.is_number_integer() && std::floor(x) != x)
      throw ConfigError(name + " must be an integer, got " + excerpt_json(value));
  }
  const bool below = spec.min_exclusive ? x <= spec.min : x < spec.min;
  const bool exact_integer = value.is_number_integer() && integral;
  if (exact_integer ? integer_out_of_range(spec, value) : !std::isfinite(x) || below || x > spec.max)
    throw ConfigError(name + " = " + excerpt_json(value) + " is out of range " + range_text(spec));
}

void check_value(const ConfigKey& spec, const json& value, const std::string& source) {
  const std::string name = source + ": " + spec.key;
  switch (spec.type) {
    case ConfigValueType::integer:
    case ConfigValueType::number:
      check_number(spec, value, source, spec.key);
      return;
    case ConfigValueType::boolean:
      if (!value.is_boolean()) throw ConfigError(name + " must be true or false, got " + excerpt_json(value));
      return;
    case ConfigValueType::string:
      if (!value.is_string()) throw ConfigError(name + " must be a string, got " + excerpt_json(value));
      return;
    case ConfigValueType::choice: {
      const bool ok = value.is_string() && std::count(spec.choices.begin(), spec.choices.end(),
                                                      value.get<std::string>()) > 0;
      if (!ok) {
        std::string allowed;
        for (const std::string& choice : spec.choices) allowed += (allowed.empty() ? "" : ", ") + choice;
        throw ConfigError(name + " = " + excerpt_json(value) + " is not one of: " + allowed);
      }
      return;
    }
    case ConfigValueType::integer_list:
    case ConfigValueType::number_or_list: {
      if (spec.type == ConfigValueType::number_or_list && value.is_number()) {
        check_number(spec, value, source, spec.key);
        return;
      }
      if (!value.is_array() || value.empty())
        throw ConfigError(name + " must be a non-empty array" +
                          (spec.type == ConfigValueType::number_or_list ? " or a number" : "") +
                          ", got " + excerpt_json(value));
      for (std::size_t i = 0; i < value.size(); ++i)
        check_number(spec, value[i], source, std::string(spec.key) + "[" + std::to_string(i) + "]");
      return;
    }
    case ConfigValueType::integer_pairs: {
      if (!value.is_array()) throw ConfigError(name + " must be an array of [a, b] pairs, got " + excerpt_json(value));
      for (std::size_t i = 0; i < value.size(); ++i) {
        const std::string where = std::string(spec.key) + "[" + std::to_string(i) + "]";
        if (!value[i].is_array() || value[i].size() != 2)
          throw ConfigError(source + ": " + where + " must be a pair [a, b], got " + excerpt_json(value[i]));
        for (std::size_t k = 0; k < 2; ++k)
          check_number(spec, value[i][k], source, where + "[" + std::to_string(k) + "]");
      }
      return;
    }
  }
}

json::json_pointer pointer_of(const std::string& dotted) {
  std::string path = "/" + dotted;
  std::replace(path.begin(), path.end(), '.', '/');
  return json::json_pointer(path);
}

// Flattens `user` into dotted keys (appended to `keys`), rejecting unknown ones and
// misplaced sections.
void collect_leaves(const json& node, const std::string& prefix, const std::string& source,
                    json& resolved, std::vector<std::string>& keys) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    const ConfigKey* spec = find_spec(key);
    if (spec) {
      check_value(*spec, it.value(), source);
      resolved[pointer_of(key)] = it.value();
      keys.push_back(key);
      continue;
    }
    const bool is_section = std::any_of(schema().begin(), schema().end(), [&](const ConfigKey& s) {
      return s.key.rfind(key + ".", 0) == 0;
    });
    if (is_section && it.value().is_object()) {
      collect_leaves(it.value(), key, source, resolved, keys);
    } else if (is_section) {
      throw ConfigError(source + ": '" + excerpt(key) + "' must be an object (a section), got " + excerpt_json(it.value()));
    } else {
      throw ConfigError(unknown_key_message(source, key));
    }
  }
}

// Follows the dotted key of the value being parsed, so that a value the parser
// cannot represent (a number overflowing double) is reported under its key.
struct KeyTracker : json::json_sax_t {
  struct Level {
    bool array;
    std::string key;        // objects: the key being parsed
    std::size_t index = 0;  // arrays: the element being parsed
  };
  std::vector<Level> levels;
  std::string failure = "not valid JSON";

  bool null() override { return done(); }
  bool boolean(bool) override { return done(); }
  bool number_integer(number_integer_t) override { return done(); }
  bool number_unsigned(number_unsigned_t) override { return done(); }
  bool number_float(number_float_t, const string_t&) override { return done(); }
  bool string(string_t&) override { return done(); }
  bool binary(binary_t&) override { return done(); }
  bool start_object(std::size_t) override { return open(false); }
  bool key(string_t& name) override {
    levels.back().key = name;
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(true); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string& token, const json::exception& error) override {
    std::string key;
    for (const Level& level : levels)
      key += level.array ? "[" + std::to_string(level.index) + "]" : (key.empty() ? "" : ".") + level.key;
    failure = (key.empty() ? "" : key + " = ") + token + ": " +
              (error.id == 406 ? "number out of range (beyond double precision)" : std::string(error.what()));
    return false;
  }

 private:
  bool done() {
    if (!levels.empty()) ++levels.back().index;
    return true;
  }
  bool open(bool array) {
    levels.push_back({array, "", 0});
    return true;
  }
  bool close() {
    levels.pop_back();
    return done();
  }
};

json defaults() {
  json result = json::object();
  for (const ConfigKey& spec : schema()) result[pointer_of(spec.key)] = spec.default_value;
  return result;
}

}  // namespace

namespace {

// One parse function per section: the typed values of a resolved, schema-checked
// section and the checks within it. `source` names the file in error messages.

ModelConfig parse_model(const json& resolved, const std::string& source) {
  const json& section = resolved.at("model");
  ModelConfig model;
  model.kind = section.at("kind").get<std::string>();
  model.layers = section.at("layers").get<std::vector<int>>();
  model.cost = choice_value(kCosts, section.at("cost"), source + ": model.cost");
  model.init_gain = section.at("init_gain").get<float>();
  if (choice_value(kActivations, section.at("activation"), source + ": model.activation"))
    model.activation_max = section.at("activation_max").get<float>();
  // A training key (how the phases run, not what the model is) that the model acts on.
  model.relaxation_path = choice_value(kRelaxationPaths, resolved.at("training").at("relaxation_path"),
                                       source + ": training.relaxation_path");
  const ModelKind& kind = model_kind(model.kind);
  if (kind.parse_options) model.options = kind.parse_options(resolved, source);
  return model;
}

DynamicsConfig parse_dynamics(const json& section, const std::string& source) {
  DynamicsConfig dynamics;
  dynamics.integrator = choice_value(kIntegrators, section.at("integrator"), source + ": dynamics.integrator");
  const json& nudge = section.at("nudge_integrator");
  dynamics.nudge_integrator = nudge == kSameIntegrator
                                  ? dynamics.integrator
                                  : choice_value(kIntegrators, nudge, source + ": dynamics.nudge_integrator");
  dynamics.order = choice_value(kOrders, section.at("order"), source + ": dynamics.order");
  dynamics.dt = section.at("dt").get<float>();
  dynamics.t_free = section.at("t_free").get<int>();
  dynamics.t_nudge = section.at("t_nudge").get<int>();
  dynamics.gamma = section.at("gamma").get<float>();
  dynamics.a0 = section.at("a0").get<float>();
  dynamics.pump = choice_value(kPumps, section.at("pump"), source + ": dynamics.pump");
  dynamics.noise = section.at("noise").get<float>();
  dynamics.temperature = section.at("temperature").get<float>();
  if (dynamics.temperature > 0.0f && dynamics.noise > 0.0f)
    throw ConfigError(source + ": dynamics.noise (a raw sigma) and dynamics.temperature (the sigma that samples "
                      "exp(-E/T)) set the same Langevin noise: give one of them");
  dynamics.tolerance = section.at("tolerance").get<float>();
  dynamics.check_every = section.at("check_every").get<int>();
  return dynamics;
}

EpConfig parse_ep(const json& section, const std::string& source) {
  EpConfig ep;
  ep.beta = section.at("beta").get<float>();
  ep.symmetric = choice_value(kNudgings, section.at("nudging"), source + ": ep.nudging");
  ep.random_sign = section.at("random_sign").get<bool>();
  return ep;
}

OptimizerConfig parse_optimizer(const json& section, const std::string& source) {
  OptimizerConfig optimizer;
  const json& lr = section.at("lr");
  optimizer.single_rate = lr.is_number();
  optimizer.learning_rates = lr.is_number() ? std::vector<float>{lr.get<float>()} : lr.get<std::vector<float>>();
  optimizer.momentum = section.at("momentum").get<float>();
  if (optimizer.momentum >= 1.0f)
    throw ConfigError(source + ": optimizer.momentum = " + excerpt_json(section.at("momentum")) + " must be below 1");
  optimizer.weight_decay = section.at("weight_decay").get<float>();
  optimizer.cosine_schedule = choice_value(kSchedules, section.at("schedule"), source + ": optimizer.schedule");
  return optimizer;
}

TrainingConfig parse_training(const json& section, const std::string& source) {
  TrainingConfig training;
  training.epochs = section.at("epochs").get<int>();
  training.batch_size = section.at("batch_size").get<int>();
  training.eval_batch_size = section.at("eval_batch_size").get<int>();
  training.prefetch_batches = section.at("prefetch_batches").get<int>();
  training.threads = section.at("threads").get<int>();
  training.gemm_precision =
      choice_value(kGemmPrecisions, section.at("gemm_precision"), source + ": training.gemm_precision");
  training.conv_path = choice_value(kConvPaths, section.at("conv_path"), source + ": training.conv_path");
  training.implicit =
      choice_value(kTrainingAlgorithms, section.at("algorithm"), source + ": training.algorithm");
  training.adjoint_iterations = section.at("adjoint_iterations").get<int>();
  training.cuda_graphs = choice_value(kCudaGraphModes, section.at("cuda_graphs"), source + ": training.cuda_graphs");
  return training;
}

DataConfig parse_data(const json& section, const std::string& source) {
  DataConfig data;
  data.name = section.at("name").get<std::string>();
  data.dir = section.at("dir").get<std::string>();
  data.standardize = choice_value(kNormalizations, section.at("normalize"), source + ": data.normalize");
  data.train_limit = section.at("train_limit").get<std::int64_t>();
  data.test_limit = section.at("test_limit").get<std::int64_t>();
  data.augmentation.crop_padding = section.at("augment_crop_padding").get<int>();
  data.augmentation.flip = section.at("augment_flip").get<bool>();
  return data;
}

// The rules that join sections: the model's layers against its cost and the
// supported class count, the model kind's own rules (dynamics, cost, ep), the
// learning-rate list against the model's weight tensors.
void check_across_sections(const Config& config, const std::string& source) {
  const json& resolved = config.resolved;
  const ModelKind& kind = model_kind(config.model.kind);
  const std::size_t minimum_layers = kind.minimum_layers(config.model.cost);
  if (config.model.layers.size() < minimum_layers)
    throw ConfigError(source + ": model.layers needs at least " + std::to_string(minimum_layers) +
                      " sizes with model.cost = " + excerpt_json(resolved["model"]["cost"]) + ", got " +
                      excerpt_json(resolved["model"]["layers"]));
  if (config.model.layers.back() > kMaxClasses)
    throw ConfigError(source + ": model.layers: the output layer has " + std::to_string(config.model.layers.back()) +
                      " units; at most " + std::to_string(kMaxClasses) + " classes are supported");
  if (resolved["model"]["activation"] != "hard_sigmoid" && !kind.clipped_activation)
    throw ConfigError(source + ": model.activation = " + excerpt_json(resolved["model"]["activation"]) +
                      " but model.kind = " + excerpt_json(resolved["model"]["kind"]) +
                      " has no clipped activation to bound (only dense_hopfield and conv_hopfield take it)");
  if (config.model.relaxation_path == RelaxationPath::fused && !kind.fused_relaxation)
    throw ConfigError(source + ": training.relaxation_path = \"fused\" but model.kind = " +
                      excerpt_json(resolved["model"]["kind"]) + " has no fused relaxation path");
  if (config.training.cuda_graphs == CudaGraphMode::on) {
    const std::string refusal = step_capture_refusal(config);
    if (!refusal.empty())
      throw ConfigError(source + ": training.cuda_graphs = \"on\" but the training step cannot be recorded as a "
                        "CUDA graph: " + refusal + ". Use \"auto\" (runs it directly) or \"off\"");
  }
  if (kind.check)
    kind.check(ModelRulesInput{config.model, config.dynamics.integrator, config.dynamics.nudge_integrator,
                               config.ep.beta, config.ep.symmetric, resolved, source});
  // Kinds whose tensor count the layers do not tell are checked when built (Trainer).
  const std::size_t weight_tensors = kind.weight_tensors(config.model);
  const json& lr = resolved["optimizer"]["lr"];
  if (weight_tensors > 0 && !config.optimizer.single_rate && lr.size() != weight_tensors)
    throw ConfigError(source + ": optimizer.lr has " + std::to_string(lr.size()) + " entries but model.layers " +
                      excerpt_json(resolved["model"]["layers"]) + " has " + std::to_string(weight_tensors) +
                      " weight tensors");
}

// The setting that `key` needs to act in `config`, as key=value, or "" when it acts.
// Every key has a value in the resolved config, so a key that the user sets where
// it does nothing (the bits of a disabled ADC, cSB damping under the fixed point)
// would silently read as if it were in effect.
std::string switch_needed(const Config& config, const std::string& key) {
  const json& resolved = config.resolved;
  for (const char* converter : {"adc", "dac", "input_dac"}) {
    const std::string prefix = std::string("hardware.") + converter + ".";
    if (key.rfind(prefix, 0) == 0 && key != prefix + "enabled" &&
        !resolved["hardware"][converter]["enabled"].get<bool>())
      return prefix + "enabled=true";
  }
  const bool csb = config.dynamics.integrator == Integrator::csb || config.dynamics.nudge_integrator == Integrator::csb;
  // The Ising kind's discrete simulated bifurcation takes its gain from dynamics.a0.
  const bool ising_dsb = config.model.kind == "ising" && resolved.contains("ising") &&
                         resolved["ising"].value("relaxation", "") == "dsb";
  if ((key == "dynamics.gamma" || key == "dynamics.pump" || (key == "dynamics.a0" && !ising_dsb)) && !csb)
    return "dynamics.integrator=csb";
  if (key == "dynamics.check_every" && config.dynamics.tolerance == 0.0f) return "dynamics.tolerance=1e-4";
  if (key == "model.activation_max" && resolved["model"]["activation"] != "clipped_relu")
    return "model.activation=clipped_relu";
  if (key == "ep.random_sign" && config.ep.symmetric) return "ep.nudging=one_sided";
  if (key == "training.adjoint_iterations" && !config.training.implicit) return "training.algorithm=implicit";
  // Only some kinds have an implicit gradient (ModelKind::implicit_gradient): name the first.
  if (key == "training.algorithm" && config.training.implicit && !model_kind(config.model.kind).implicit_gradient)
    for (const ModelKind& kind : model_kinds())
      if (kind.implicit_gradient) return "model.kind=" + kind.name;
  // The one key of the `conv` section that its borrowers (conv_predictive_coding) do not read.
  if (key == "conv.nudged_couplings" && config.model.kind != "conv_hopfield") return "model.kind=conv_hopfield";
  const std::vector<std::string>& borrowed = model_kind(config.model.kind).borrowed_sections;
  if (std::any_of(borrowed.begin(), borrowed.end(),
                  [&](const std::string& section) { return key.rfind(section + ".", 0) == 0; }))
    return "";
  for (const ModelKind& kind : model_kinds())
    if (kind.name != config.model.kind &&
        std::any_of(kind.keys.begin(), kind.keys.end(), [&](const ConfigKey& spec) { return spec.key == key; }))
      return "model.kind=" + kind.name;
  return "";
}

// Refuses a key the user set away from its default where it has no effect in the
// resolved config, naming the setting it needs.
void check_keys_take_effect(const Config& config, const std::vector<std::string>& user_keys,
                            const std::string& source) {
  for (const std::string& key : user_keys) {
    // A key at its default changes nothing either way, and a resolved config
    // (config.json, parsed again) holds every key.
    if (config.resolved[pointer_of(key)] == find_spec(key)->default_value) continue;
    const std::string needed = switch_needed(config, key);
    if (!needed.empty())
      throw ConfigError(source + ": " + key + " has no effect unless " + needed + " (now " +
                        needed.substr(0, needed.find('=')) + " = " +
                        excerpt_json(config.resolved[pointer_of(needed.substr(0, needed.find('=')))]) +
                        "): add --set " + needed + ", or drop " + key);
  }
}

}  // namespace

Config parse_config(const json& user, const std::string& source, const json& base) {
  if (!user.is_object() || !base.is_object()) throw ConfigError(source + ": a config must be a JSON object");
  json resolved = defaults();
  json inherited = json::object(), given = json::object();
  std::vector<std::string> base_keys, user_keys;
  collect_leaves(base, "", source, inherited, base_keys);
  collect_leaves(user, "", source, given, user_keys);
  resolved.merge_patch(inherited);
  resolved.merge_patch(given);

  Config config;
  config.seed = resolved.at("seed").get<std::uint64_t>();
  config.device = resolved.at("device").get<std::string>();
  config.model = parse_model(resolved, source);
  config.dynamics = parse_dynamics(resolved.at("dynamics"), source);
  config.ep = parse_ep(resolved.at("ep"), source);
  config.optimizer = parse_optimizer(resolved.at("optimizer"), source);
  config.training = parse_training(resolved.at("training"), source);
  config.data = parse_data(resolved.at("data"), source);
  config.hardware = hardware_config_from(resolved.at("hardware"), source);
  config.resolved = std::move(resolved);
  check_across_sections(config, source);
  check_keys_take_effect(config, user_keys, source);
  return config;
}

json read_config_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw ConfigError(path + ": " +
                      (std::filesystem::exists(path, error) ? "not a regular file" : "no such config file"));
  std::ifstream file(path);
  if (!file) throw ConfigError(path + ": cannot open config file");
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  try {
    return parse_json_bounded(text, kMaxJsonDepth, /*ignore_comments=*/true);
  } catch (const JsonDepthError& error) {
    throw ConfigError(path + ": " + error.what());
  } catch (const json::out_of_range&) {
    // A number beyond double (1e400): JSON allows it, a config value cannot be it.
    KeyTracker tracker;
    json::sax_parse(text, &tracker, json::input_format_t::json, true, /*ignore_comments=*/true);
    throw ConfigError(path + ": " + tracker.failure);
  } catch (const json::exception& error) {
    throw ConfigError(path + ": not valid JSON: " + error.what());
  }
}

void apply_override(json& user, const std::string& assignment) {
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    throw ConfigError("--set '" + excerpt(assignment) + "': expected key=value, e.g. training.epochs=5");
  const std::string key = assignment.substr(0, equals);
  const std::string text = assignment.substr(equals + 1);
  const ConfigKey* spec = find_spec(key);
  if (!spec) throw ConfigError(unknown_key_message("--set", key));
  json value;
  if (spec->type == ConfigValueType::string || spec->type == ConfigValueType::choice) {
    value = text;
  } else {
    try {
      value = parse_json_bounded(text);
    } catch (const JsonDepthError& error) {
      throw ConfigError("--set " + key + ": '" + excerpt(text) + "': " + error.what());
    } catch (const json::exception&) {  // malformed, or a number beyond double (1e400)
      throw ConfigError("--set " + key + "=" + excerpt(text) + ": '" + excerpt(text) + "' is not a valid value");
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
                        excerpt_json(child));
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
  for (const ConfigKey& spec : schema()) {
    std::string allowed;
    switch (spec.type) {
      case ConfigValueType::choice:
        for (const std::string& choice : spec.choices) allowed += (allowed.empty() ? "" : ", ") + ("`" + choice + "`");
        break;
      case ConfigValueType::boolean: allowed = "true, false"; break;
      case ConfigValueType::string: allowed = "path"; break;
      case ConfigValueType::integer_list: allowed = "integers in " + range_text(spec); break;
      case ConfigValueType::number_or_list: allowed = "number or list in " + range_text(spec); break;
      case ConfigValueType::integer_pairs: allowed = "[a, b] pairs of integers in " + range_text(spec); break;
      default: allowed = range_text(spec); break;
    }
    out << "| `" << spec.key << "` | `" << spec.default_value.dump() << "` | " << allowed << " | "
        << spec.help << " |\n";
  }
  return out.str();
}

}  // namespace eqprop
