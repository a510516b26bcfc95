// The schema-driven config (engine/config.h): defaults, every kind of rejected
// value (each a ConfigError naming the source and the key), --set overrides, config
// files, the reference table, and the shipped configs/ files.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "kernels/error.h"
#include "models/config_key.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using nlohmann::json;
using test::check_contains;
using test::TempDir;
using test::thrown_message;

constexpr const char* kSource = "my_run.json";

// The message of the ConfigError that parse_config(user) throws ("" and a failed
// check if it accepts the config).
std::string parse_error(const json& user) {
  return thrown_message<ConfigError>([&] { parse_config(user, kSource); });
}

std::string parse_error(const char* text) { return parse_error(json::parse(text)); }

std::string override_error(json& user, const std::string& assignment) {
  return thrown_message<ConfigError>([&] { apply_override(user, assignment); });
}

// Dotted names of the leaves of a resolved config ("dynamics.t_free", "seed", ...).
void collect_leaf_keys(const json& node, const std::string& prefix, std::vector<std::string>& keys) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it.value().is_object()) {
      collect_leaf_keys(it.value(), key, keys);
    } else {
      keys.push_back(key);
    }
  }
}

std::vector<std::string> leaf_keys(const json& resolved) {
  std::vector<std::string> keys;
  collect_leaf_keys(resolved, "", keys);
  return keys;
}

// The keys of the reference table: the first cell of each row, "| `key` | ...".
std::set<std::string> reference_keys(const std::string& markdown) {
  std::set<std::string> keys;
  std::size_t start = 0;
  while (start < markdown.size()) {
    std::size_t end = markdown.find('\n', start);
    if (end == std::string::npos) end = markdown.size();
    const std::string line = markdown.substr(start, end - start);
    start = end + 1;
    if (line.rfind("| `", 0) != 0) continue;
    const std::size_t close = line.find('`', 3);
    if (close != std::string::npos) keys.insert(line.substr(3, close - 3));
  }
  return keys;
}

// Every key the schema declares (engine/config.cpp), as a user reads them in the
// reference. Kept by hand so that a key dropped from the schema shows up here.
const std::vector<std::string> kSchemaKeys = {
    "seed",           "device",          "model.kind", "model.layers",           "model.cost",
    "model.init_gain", "model.activation", "model.activation_max",
    "oscillator.shil", "oscillator.input_scale", "dynamics.integrator", "dynamics.order", "dynamics.dt",       "dynamics.t_free",
    "dynamics.t_nudge", "dynamics.nudge_integrator", "dynamics.gamma", "dynamics.a0", "dynamics.pump",
    "dynamics.noise", "dynamics.temperature", "dynamics.tolerance", "dynamics.check_every", "ising.temperature_start",
    "ising.temperature_end", "ising.update", "ising.relaxation", "ising.spins_per_class", "ising.replicas", "predictive_coding.activation", "ep.beta",        "ep.nudging",             "ep.random_sign",
    "optimizer.lr",   "optimizer.momentum", "optimizer.weight_decay", "optimizer.schedule",
    "training.epochs", "training.batch_size", "training.eval_batch_size",
    "training.prefetch_batches", "training.threads", "data.name", "data.dir",        "data.normalize",
    "data.train_limit", "data.test_limit", "data.augment_crop_padding", "data.augment_flip",
    "training.gemm_precision",
    "training.conv_path",
    "training.relaxation_path",
    "training.cuda_graphs",
    "training.algorithm", "training.adjoint_iterations",
    "conv.input_shape", "conv.channels", "conv.kernel", "conv.stride", "conv.padding", "conv.pool", "conv.skips",
    "conv.nudged_couplings",
    "hardware.dac.enabled", "hardware.dac.bits", "hardware.dac.range", "hardware.dac.lo", "hardware.dac.hi",
    "hardware.dac.rounding", "hardware.dac.convention",
    "hardware.input_dac.enabled", "hardware.input_dac.bits", "hardware.input_dac.range", "hardware.input_dac.lo",
    "hardware.input_dac.hi", "hardware.input_dac.rounding", "hardware.input_dac.convention",
    "hardware.adc.enabled", "hardware.adc.bits", "hardware.adc.range", "hardware.adc.lo", "hardware.adc.hi",
    "hardware.adc.rounding", "hardware.adc.convention", "hardware.adc.noise_sigma", "hardware.adc.noise_unit",
    "hardware.programming_noise.additive", "hardware.programming_noise.multiplicative", "hardware.mismatch_sigma",
    "hardware.keep_full_precision"};

TEST_CASE("config: defaults") {
  const Config config = parse_config(json::object(), "defaults");
  CHECK(config.model.layers == std::vector<int>{784, 500, 10});
  CHECK(config.model.cost == CostKind::mse);
  CHECK(config.dynamics.integrator == Integrator::fixed_point);
  CHECK(config.dynamics.t_free == 30);
  CHECK(config.dynamics.t_nudge == 10);
  CHECK(config.ep.symmetric);
  CHECK_FALSE(config.ep.random_sign);
  // A learning rate for every weight tensor, whether the default is a number or a list.
  for (std::size_t l = 0; l < 2; ++l) CHECK(config.optimizer.learning_rate(l) > 0.0f);
  CHECK(config.training.epochs == 30);
  CHECK(config.training.cuda_graphs == CudaGraphMode::automatic);
  CHECK(config.data.name == "fashion_mnist");
  CHECK(config.device == "auto");

  // The resolved JSON holds every key of the schema, and nothing else.
  const std::vector<std::string> keys = leaf_keys(config.resolved);
  for (const std::string& key : kSchemaKeys)
    CHECK_MESSAGE(std::count(keys.begin(), keys.end(), key) == 1, "resolved config lacks " << key);
  CHECK(keys.size() == kSchemaKeys.size());
  // ...and the same keys as the reference table, which is generated from the schema.
  const std::set<std::string> reference = reference_keys(config_reference_markdown());
  CHECK(std::set<std::string>(keys.begin(), keys.end()) == reference);

  // A resolved config parses back to itself (it is what config.json holds).
  CHECK(parse_config(config.resolved, "config.json").resolved == config.resolved);
}

TEST_CASE("config: every struct default is the schema's default") {
  const Config parsed = parse_config(json::object(), "defaults");
  const Config plain;
  CHECK(plain.seed == parsed.seed);
  CHECK(plain.device == parsed.device);
  CHECK(plain.model.layers == parsed.model.layers);
  CHECK(plain.model.cost == parsed.model.cost);
  CHECK(plain.model.init_gain == parsed.model.init_gain);
  const DynamicsConfig& d = plain.dynamics;
  const DynamicsConfig& pd = parsed.dynamics;
  CHECK(d.integrator == pd.integrator);
  CHECK(d.nudge_integrator == pd.nudge_integrator);
  CHECK(d.dt == pd.dt);
  CHECK(d.t_free == pd.t_free);
  CHECK(d.t_nudge == pd.t_nudge);
  CHECK(d.gamma == pd.gamma);
  CHECK(d.a0 == pd.a0);
  CHECK(d.pump == pd.pump);
  CHECK(d.noise == pd.noise);
  CHECK(d.tolerance == pd.tolerance);
  CHECK(d.check_every == pd.check_every);
  CHECK(plain.ep.beta == parsed.ep.beta);
  CHECK(plain.ep.symmetric == parsed.ep.symmetric);
  CHECK(plain.ep.random_sign == parsed.ep.random_sign);
  CHECK(plain.optimizer.learning_rates == parsed.optimizer.learning_rates);
  CHECK(plain.optimizer.single_rate == parsed.optimizer.single_rate);
  CHECK(plain.optimizer.momentum == parsed.optimizer.momentum);
  CHECK(plain.optimizer.weight_decay == parsed.optimizer.weight_decay);
  CHECK(plain.optimizer.cosine_schedule == parsed.optimizer.cosine_schedule);
  CHECK(plain.training.epochs == parsed.training.epochs);
  CHECK(plain.training.batch_size == parsed.training.batch_size);
  CHECK(plain.training.eval_batch_size == parsed.training.eval_batch_size);
  CHECK(plain.training.prefetch_batches == parsed.training.prefetch_batches);
  CHECK(plain.training.gemm_precision == parsed.training.gemm_precision);
  CHECK(plain.data.name == parsed.data.name);
  CHECK(plain.data.dir == parsed.data.dir);
  CHECK(plain.data.standardize == parsed.data.standardize);
  CHECK(plain.data.train_limit == parsed.data.train_limit);
  CHECK(plain.data.test_limit == parsed.data.test_limit);
  CHECK(plain.data.augmentation.crop_padding == parsed.data.augmentation.crop_padding);
  CHECK(plain.data.augmentation.flip == parsed.data.augmentation.flip);
}

TEST_CASE("config: choice keys parse into their enums") {
  const Config config = parse_config(json::parse(R"({
      "model": {"cost": "cross_entropy"},
      "dynamics": {"integrator": "csb", "nudge_integrator": "gradient_flow", "pump": "linear"},
      "ep": {"nudging": "one_sided"},
      "optimizer": {"schedule": "cosine"},
      "training": {"gemm_precision": "bf16"},
      "data": {"normalize": "standardize"}})"),
                                     kSource);
  CHECK(config.model.cost == CostKind::cross_entropy);
  CHECK(config.dynamics.integrator == Integrator::csb);
  CHECK(config.dynamics.nudge_integrator == Integrator::gradient_flow);
  CHECK(config.dynamics.pump);
  CHECK_FALSE(config.ep.symmetric);
  CHECK(config.optimizer.cosine_schedule);
  CHECK(config.training.gemm_precision == GemmPrecision::bf16);
  CHECK(config.data.standardize);
  // A name outside its table is an error, never a default.
  static constexpr Choice<int> kTable[] = {{"one", 1}, {"two", 2}};
  CHECK(choice_value(kTable, json("two"), "my.key") == 2);
  check_contains(thrown_message<ConfigError>([] { choice_value(kTable, json("three"), "my.key"); }),
                 {"my.key", "\"three\""});
  CHECK(choice_names(kTable) == std::vector<std::string>{"one", "two"});
  // "same" follows the free phase's integrator.
  CHECK(parse_config(json::parse(R"({"dynamics": {"integrator": "gradient_flow"}})"), kSource)
            .dynamics.nudge_integrator == Integrator::gradient_flow);
}

TEST_CASE("config: given values replace the defaults, absent ones keep them") {
  const Config config = parse_config(json::parse(R"({
      "model": {"layers": [20, 7, 3]},
      "dynamics": {"integrator": "gradient_flow", "dt": 0.25},
      "ep": {"nudging": "one_sided", "random_sign": true},
      "optimizer": {"lr": 0.02},
      "training": {"epochs": 3.0}
  })"), kSource);  // "epochs": 3.0, an integral float, is an integer
  CHECK(config.model.layers == std::vector<int>{20, 7, 3});
  CHECK(config.dynamics.integrator == Integrator::gradient_flow);
  CHECK(config.dynamics.dt == doctest::Approx(0.25));
  CHECK_FALSE(config.ep.symmetric);
  CHECK(config.ep.random_sign);
  // One number is spread over every weight tensor.
  CHECK(config.optimizer.single_rate);
  CHECK(config.optimizer.learning_rate(0) == 0.02f);
  CHECK(config.optimizer.learning_rate(1) == 0.02f);
  CHECK(config.training.epochs == 3);
  CHECK(config.training.batch_size == 128);
  CHECK(config.resolved["model"]["layers"] == json({20, 7, 3}));
  CHECK(config.resolved["training"]["batch_size"] == 128);
}

TEST_CASE("config: a config that is not a JSON object") {
  check_contains(parse_error(json::array({1, 2})), {kSource, "object"});
  check_contains(parse_error(json(5)), {kSource});
}

TEST_CASE("config: unknown keys, with a suggestion for a near miss") {
  SUBCASE("top level, near miss") {
    const std::string message = parse_error(R"({"sed": 3})");
    check_contains(message, {kSource, "'sed'", "did you mean 'seed'"});
  }
  SUBCASE("inside a section, near miss") {
    const std::string message = parse_error(R"({"dynamics": {"t_fre": 10}})");
    check_contains(message, {kSource, "dynamics.t_fre", "did you mean 'dynamics.t_free'"});
  }
  SUBCASE("inside a section, far off") {
    const std::string message = parse_error(R"({"training": {"learning_schedule_x": 1}})");
    check_contains(message, {kSource, "training.learning_schedule_x"});
    CHECK(message.find("did you mean") == std::string::npos);
  }
  SUBCASE("top level, far off") {
    const std::string message = parse_error(R"({"completely_unrelated": true})");
    check_contains(message, {kSource, "completely_unrelated"});
    CHECK(message.find("did you mean") == std::string::npos);
  }
  SUBCASE("unknown section") {
    check_contains(parse_error(R"({"optimiser": {"lr": 0.1}})"), {kSource, "optimiser"});
  }
}

TEST_CASE("config: wrong types") {
  SUBCASE("string for a number") {
    check_contains(parse_error(R"({"dynamics": {"dt": "0.1"}})"),
                   {kSource, "dynamics.dt", "must be a number", "\"0.1\""});
  }
  SUBCASE("string for an integer") {
    check_contains(parse_error(R"({"training": {"epochs": "5"}})"),
                   {kSource, "training.epochs", "must be a number"});
  }
  SUBCASE("number for a boolean") {
    check_contains(parse_error(R"({"ep": {"random_sign": 1}})"),
                   {kSource, "ep.random_sign", "true or false", "1"});
  }
  SUBCASE("non-integer for an integer") {
    check_contains(parse_error(R"({"training": {"batch_size": 12.5}})"),
                   {kSource, "training.batch_size", "integer", "12.5"});
  }
  SUBCASE("non-integer inside an integer list") {
    check_contains(parse_error(R"({"model": {"layers": [784, 10.5]}})"),
                   {kSource, "model.layers[1]", "integer"});
  }
  SUBCASE("number for a list of integers") {
    check_contains(parse_error(R"({"model": {"layers": 784}})"), {kSource, "model.layers", "array"});
  }
  SUBCASE("empty list") {
    check_contains(parse_error(R"({"model": {"layers": []}})"),
                   {kSource, "model.layers", "non-empty"});
  }
  SUBCASE("number for a string") {
    check_contains(parse_error(R"({"data": {"dir": 5}})"), {kSource, "data.dir", "string"});
  }
  SUBCASE("null for a number") {
    check_contains(parse_error(R"({"seed": null})"), {kSource, "seed", "null"});
  }
  SUBCASE("a section given as a number") {
    check_contains(parse_error(R"({"dynamics": 5})"), {kSource, "'dynamics'", "object", "5"});
  }
  SUBCASE("a section given as a list") {
    check_contains(parse_error(R"({"training": [1, 2]})"), {kSource, "'training'", "object"});
  }
  SUBCASE("a key given as a section") {
    check_contains(parse_error(R"({"training": {"epochs": {"n": 3}}})"),
                   {kSource, "training.epochs"});
  }
}

TEST_CASE("config: out-of-range values") {
  SUBCASE("negative dt") {
    check_contains(parse_error(R"({"dynamics": {"dt": -0.1}})"),
                   {kSource, "dynamics.dt", "-0.1", "out of range", "(0, 1]"});
  }
  SUBCASE("dt = 0 hits the exclusive bound") {
    check_contains(parse_error(R"({"dynamics": {"dt": 0}})"), {kSource, "dynamics.dt", "out of range"});
  }
  SUBCASE("dt above its upper bound") {
    check_contains(parse_error(R"({"dynamics": {"dt": 1.5}})"), {kSource, "dynamics.dt", "out of range"});
  }
  SUBCASE("dt = 1 is inside the inclusive upper bound") {
    CHECK(parse_config(json{{"dynamics", {{"dt", 1}}}}, kSource).dynamics.dt == 1.0f);
  }
  SUBCASE("momentum 1") {
    check_contains(parse_error(R"({"optimizer": {"momentum": 1}})"),
                   {kSource, "optimizer.momentum", "below 1"});
  }
  SUBCASE("momentum 0 is allowed") {
    CHECK(parse_config(json{{"optimizer", {{"momentum", 0}}}}, kSource).optimizer.momentum == 0.0f);
  }
  SUBCASE("beta 0") {
    check_contains(parse_error(R"({"ep": {"beta": 0}})"), {kSource, "ep.beta", "out of range"});
  }
  SUBCASE("zero epochs") {
    check_contains(parse_error(R"({"training": {"epochs": 0}})"), {kSource, "training.epochs", "out of range"});
  }
  SUBCASE("negative seed") {
    check_contains(parse_error(R"({"seed": -1})"), {kSource, "seed", "out of range"});
  }
  SUBCASE("seed 2^53 + 1 is outside [0, 2^53] although it rounds to 2^53 as a double") {
    check_contains(parse_error(R"({"seed": 9007199254740993})"), {kSource, "seed", "9007199254740993", "out of range"});
    check_contains(parse_error(R"({"seed": 18446744073709551615})"), {kSource, "seed", "out of range"});
    CHECK(parse_config(json::parse(R"({"seed": 9007199254740992})"), kSource).seed == 9007199254740992ULL);
    json user = json::object();
    check_contains(override_error(user, "seed=9007199254740993"), {"--set", "seed", "out of range"});
  }
  SUBCASE("a layer of size 0") {
    check_contains(parse_error(R"({"model": {"layers": [784, 0, 10]}})"),
                   {kSource, "model.layers[1]", "out of range"});
  }
  SUBCASE("negative learning rate inside the list") {
    check_contains(parse_error(R"({"optimizer": {"lr": [0.1, -0.1]}})"),
                   {kSource, "optimizer.lr[1]", "out of range"});
  }
  SUBCASE("more classes than supported") {
    check_contains(parse_error(R"({"model": {"layers": [784, 2000]}, "optimizer": {"lr": 0.1}})"),
                   {kSource, "model.layers", "2000"});
  }
}

TEST_CASE("config: a key the user sets where it has no effect names the setting it needs") {
  const std::vector<std::pair<const char*, const char*>> refused = {
      {R"({"hardware": {"adc": {"bits": 4}}})", "hardware.adc.enabled=true"},
      {R"({"hardware": {"dac": {"rounding": "stochastic"}}})", "hardware.dac.enabled=true"},
      {R"({"hardware": {"input_dac": {"bits": 6}}})", "hardware.input_dac.enabled=true"},
      {R"({"dynamics": {"gamma": 0.3}})", "dynamics.integrator=csb"},
      {R"({"dynamics": {"a0": 2}})", "dynamics.integrator=csb"},
      {R"({"dynamics": {"pump": "linear", "integrator": "gradient_flow"}})", "dynamics.integrator=csb"},
      {R"({"dynamics": {"check_every": 2}})", "dynamics.tolerance="},
      {R"({"ep": {"random_sign": true}})", "ep.nudging=one_sided"},
      {R"({"training": {"adjoint_iterations": 10}})", "training.algorithm=implicit"},
      {R"({"model": {"kind": "ising"}, "ep": {"nudging": "one_sided"}, "training": {"algorithm": "implicit"}})", "model.kind=dense_hopfield"},
      {R"({"ising": {"replicas": 2}})", "model.kind=ising"},
      {R"({"conv": {"kernel": [5]}})", "model.kind=conv_hopfield"},
      // conv_predictive_coding borrows the conv section but not this key.
      {R"({"model": {"kind": "conv_predictive_coding", "cost": "mse"}, "dynamics": {"order": "asynchronous"},
          "conv": {"nudged_couplings": "direct"}})",
       "model.kind=conv_hopfield"},
      {R"({"oscillator": {"shil": 0.5}})", "model.kind=oscillator"},
  };
  for (const auto& [text, needed] : refused) {
    INFO(text);
    check_contains(parse_error(text), {kSource, "has no effect", needed});
  }
  // Set where they act, the same keys parse.
  for (const char* text : {
           R"({"hardware": {"adc": {"enabled": true, "bits": 4}}})",
           R"({"hardware": {"adc": {"enabled": false}}})",
           R"({"dynamics": {"integrator": "csb", "gamma": 0.3, "a0": 2, "pump": "linear"}})",
           R"({"dynamics": {"nudge_integrator": "csb", "gamma": 0.3}})",
           R"({"dynamics": {"tolerance": 1e-4, "check_every": 2}})",
           R"({"ep": {"nudging": "one_sided", "random_sign": true}})",
       }) {
    INFO(text);
    CHECK_NOTHROW(parse_config(json::parse(text), kSource));
  }
  // --set: the same rule.
  json user = json::object();
  apply_override(user, "hardware.adc.bits=2");
  check_contains(parse_error(user), {"hardware.adc.bits", "has no effect", "--set hardware.adc.enabled=true"});
  // The keys of a base config (a checkpoint's, which holds every key) are not the user's.
  const Config trained = parse_config(json::object(), kSource);
  CHECK_NOTHROW(parse_config(json::object(), kSource, trained.resolved));
  check_contains(thrown_message<ConfigError>([&] {
                   parse_config(json{{"hardware", {{"adc", {{"bits", 3}}}}}}, kSource, trained.resolved);
                 }),
                 {"hardware.adc.bits", "hardware.adc.enabled=true"});
  CHECK(parse_config(json{{"hardware", {{"adc", {{"enabled", true}, {"bits", 3}}}}}}, kSource, trained.resolved)
            .hardware.adc.bits == 3);
}

TEST_CASE("config: bad choice lists the allowed values") {
  check_contains(parse_error(R"({"dynamics": {"integrator": "rk4"}})"),
                 {kSource, "dynamics.integrator", "\"rk4\"", "fixed_point", "gradient_flow"});
  check_contains(parse_error(R"({"device": "tpu"})"), {kSource, "device", "auto", "cpu", "cuda"});
  check_contains(parse_error(R"({"model": {"cost": 3}})"), {kSource, "model.cost", "mse", "cross_entropy"});
}

TEST_CASE("config: layer count and learning-rate list length") {
  SUBCASE("one layer is too few") {
    check_contains(parse_error(R"({"model": {"layers": [784]}, "optimizer": {"lr": 0.1}})"),
                   {kSource, "model.layers", "at least 2", "[784]"});
  }
  SUBCASE("cross_entropy needs a hidden layer") {
    check_contains(parse_error(R"({"model": {"layers": [784, 10], "cost": "cross_entropy"}, "optimizer": {"lr": 0.1}})"),
                   {kSource, "model.layers", "at least 3"});
  }
  SUBCASE("lr list longer than the weight tensors") {
    check_contains(parse_error(R"({"optimizer": {"lr": [0.1, 0.1, 0.1]}})"),
                   {kSource, "optimizer.lr", "3 entries", "2 weight tensors"});
  }
  SUBCASE("lr list shorter than the weight tensors") {
    check_contains(parse_error(R"({"model": {"layers": [784, 100, 100, 10]}, "optimizer": {"lr": [0.1, 0.05]}})"),
                   {kSource, "optimizer.lr", "2 entries", "3 weight tensors"});
  }
  SUBCASE("matching lengths") {
    const Config config = parse_config(
        json::parse(R"({"model": {"layers": [784, 100, 100, 10]}, "optimizer": {"lr": [0.3, 0.2, 0.1]}})"), kSource);
    CHECK(config.optimizer.learning_rates == std::vector<float>{0.3f, 0.2f, 0.1f});
  }
}

TEST_CASE("config: beta >= 1 needs one-sided nudging with the mse cost") {
  check_contains(parse_error(R"({"ep": {"beta": 1.0}})"), {kSource, "ep.beta", "symmetric"});
  check_contains(parse_error(R"({"ep": {"beta": 2.5, "nudging": "symmetric"}})"), {kSource, "ep.beta"});
  const Config one_sided = parse_config(json{{"ep", {{"beta", 2.5}, {"nudging", "one_sided"}}}}, kSource);
  CHECK(one_sided.ep.beta == doctest::Approx(2.5));
  CHECK_FALSE(one_sided.ep.symmetric);
  // With cross_entropy the output is outside the energy: no bound on beta.
  CHECK_NOTHROW(parse_config(json{{"model", {{"cost", "cross_entropy"}}}, {"ep", {{"beta", 1.0}}}}, kSource));
  CHECK_NOTHROW(parse_config(json{{"ep", {{"beta", 0.999}}}}, kSource));
}

TEST_CASE("config: apply_override") {
  json user = json::object();
  SUBCASE("an integer") {
    apply_override(user, "training.epochs=5");
    CHECK(user["training"]["epochs"] == 5);
    CHECK(parse_config(user, "--set").training.epochs == 5);
  }
  SUBCASE("an array") {
    apply_override(user, "model.layers=[784,100,10]");
    CHECK(user["model"]["layers"] == json({784, 100, 10}));
    CHECK(parse_config(user, "--set").model.layers == std::vector<int>{784, 100, 10});
  }
  SUBCASE("a string, taken verbatim") {
    apply_override(user, "data.dir=/x");
    CHECK(user["data"]["dir"] == "/x");
    apply_override(user, "data.dir=a=b");  // only the first '=' splits
    CHECK(user["data"]["dir"] == "a=b");
  }
  SUBCASE("a choice") {
    apply_override(user, "dynamics.integrator=gradient_flow");
    CHECK(parse_config(user, "--set").dynamics.integrator == Integrator::gradient_flow);
  }
  SUBCASE("a boolean") {
    apply_override(user, "ep.nudging=one_sided");
    apply_override(user, "ep.random_sign=true");
    CHECK(user["ep"]["random_sign"] == true);
    CHECK(parse_config(user, "--set").ep.random_sign);
  }
  SUBCASE("a number or a list") {
    apply_override(user, "optimizer.lr=0.01");
    CHECK(user["optimizer"]["lr"] == json(0.01));
    apply_override(user, "optimizer.lr=[0.2,0.1]");
    CHECK(user["optimizer"]["lr"] == json({0.2, 0.1}));
  }
  SUBCASE("replaces a value of the file and keeps its neighbours") {
    user = json{{"training", {{"epochs", 3}, {"batch_size", 32}}}};
    apply_override(user, "training.epochs=7");
    CHECK(user == json{{"training", {{"epochs", 7}, {"batch_size", 32}}}});
  }
  SUBCASE("an unknown key") {
    check_contains(override_error(user, "training.epoch=5"),
                   {"--set", "training.epoch", "did you mean 'training.epochs'"});
    check_contains(override_error(user, "bogus=1"), {"--set", "bogus"});
    check_contains(override_error(user, "training=5"), {"--set", "training"});
  }
  SUBCASE("no '='") {
    check_contains(override_error(user, "training.epochs"), {"training.epochs", "key=value"});
    check_contains(override_error(user, "=5"), {"key=value"});
  }
  SUBCASE("an unparsable value") {
    check_contains(override_error(user, "training.epochs=abc"), {"training.epochs", "abc"});
    check_contains(override_error(user, "training.epochs="), {"training.epochs"});
    check_contains(override_error(user, "model.layers=[784,"), {"model.layers"});
  }
  SUBCASE("a value of the wrong type") {
    check_contains(override_error(user, "ep.random_sign=1"), {"--set", "ep.random_sign", "true or false"});
    check_contains(override_error(user, "training.epochs=2.5"), {"--set", "training.epochs", "integer"});
    check_contains(override_error(user, "training.epochs=\"5\""), {"--set", "training.epochs", "number"});
  }
  SUBCASE("an out-of-range value") {
    check_contains(override_error(user, "dynamics.dt=-1"), {"--set", "dynamics.dt", "out of range"});
    check_contains(override_error(user, "training.batch_size=0"), {"--set", "training.batch_size", "out of range"});
  }
  SUBCASE("a bad choice") {
    check_contains(override_error(user, "dynamics.integrator=rk4"), {"--set", "dynamics.integrator", "rk4", "fixed_point"});
  }
  // A rejected override leaves the config as it was.
  CHECK(parse_config(user, "--set").resolved.is_object());
}

TEST_CASE("config: apply_override of a number beyond double precision") {
  json user = json::object();
  check_contains(override_error(user, "ep.beta=1e400"), {"ep.beta", "1e400"});
  check_contains(override_error(user, "optimizer.lr=[0.1,1e400]"), {"optimizer.lr", "1e400"});
}

TEST_CASE("config: apply_override into a file whose section has the wrong type") {
  // The file is wrong ("training" is a number), and --set must not make that worse
  // than a ConfigError: the CLI turns only eqprop errors into an exit code.
  json user = json{{"training", 5}};
  CHECK_THROWS_AS(apply_override(user, "training.epochs=5"), ConfigError);
}

TEST_CASE("config: read_config_file") {
  TempDir dir;
  SUBCASE("missing file") {
    const std::string path = dir.file("absent.json");
    check_contains(thrown_message<ConfigError>([&] { read_config_file(path); }), {path});
  }
  SUBCASE("malformed JSON") {
    const std::string path = dir.file("broken.json");
    std::ofstream(path) << "{\"training\": {\"epochs\": 3,}";
    check_contains(thrown_message<ConfigError>([&] { read_config_file(path); }), {path, "JSON"});
  }
  SUBCASE("empty file") {
    const std::string path = dir.file("empty.json");
    std::ofstream(path) << "";
    check_contains(thrown_message<ConfigError>([&] { read_config_file(path); }), {path});
  }
  SUBCASE("a directory") {
    const std::string path = dir.path().string();
    CHECK_THROWS_AS(read_config_file(path), ConfigError);
  }
  SUBCASE("comments are accepted") {
    const std::string path = dir.file("commented.json");
    std::ofstream(path) << "// a run\n{\n  /* the network */ \"model\": {\"layers\": [784, 64, 10]},\n"
                           "  \"training\": {\"epochs\": 4}  // short\n}\n";
    const json user = read_config_file(path);
    const Config config = parse_config(user, path);
    CHECK(config.model.layers == std::vector<int>{784, 64, 10});
    CHECK(config.training.epochs == 4);
  }
  SUBCASE("a number beyond double precision names the file and the key") {
    const std::string path = dir.file("huge.json");
    std::ofstream(path) << R"({"ep": {"beta": 1e400}})";
    check_contains(thrown_message<ConfigError>([&] { read_config_file(path); }),
                   {path, "ep.beta", "1e400", "out of range"});
    std::ofstream(path) << R"({"optimizer": {"lr": [0.1, -1e999]}, "seed": 1})";
    check_contains(thrown_message<ConfigError>([&] { read_config_file(path); }),
                   {path, "optimizer.lr[1]", "-1e999", "out of range"});
  }
  SUBCASE("the file name is the source of later errors") {
    const std::string path = dir.file("typo.json");
    std::ofstream(path) << R"({"dynamics": {"t_fre": 3}})";
    check_contains(thrown_message<ConfigError>([&] { parse_config(read_config_file(path), path); }),
                   {path, "dynamics.t_fre"});
  }
}

TEST_CASE("config: the reference mentions every resolved key") {
  const std::string reference = config_reference_markdown();
  const Config config = parse_config(json::object(), "defaults");
  const std::vector<std::string> keys = leaf_keys(config.resolved);
  CHECK(keys.size() >= 20);
  for (const std::string& key : keys)
    CHECK_MESSAGE(reference.find("`" + key + "`") != std::string::npos, "reference lacks " << key);
  // A Markdown table: a header, its separator, one row per key.
  CHECK(reference.rfind("| key |", 0) == 0);
  CHECK(std::count(reference.begin(), reference.end(), '\n') == static_cast<long>(keys.size()) + 2);
}

TEST_CASE("config: every file in configs/ parses") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(EQPROP_SOURCE_DIR) / "configs";
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path());
  if (files.empty()) {
    MESSAGE("skipped: no .json files in " << dir.string() << " yet");
    return;
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    INFO("config file: " << file.string());
    try {
      const Config config = parse_config(read_config_file(file.string()), file.string());
      // A dense network lists its input and output; a conv network at least its output.
      CHECK(config.model.layers.size() >= (config.model.kind.rfind("conv_", 0) == 0 ? 1u : 2u));
    } catch (const ConfigError& error) {
      FAIL_CHECK(error.what());
    }
  }
}

}  // namespace
}  // namespace eqprop
