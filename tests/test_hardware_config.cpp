// Tests of the `hardware` config section (engine/hardware_config.h): defaults (all
// off), typed values, errors in the style of engine/config.cpp (one ConfigError
// naming the file, the dotted key and the value), --set overrides and the rows of
// the reference table.
#include <doctest/doctest.h>

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "engine/hardware_config.h"
#include "kernels/error.h"
#include "tests/test_util.h"

namespace {

using eqprop::ConfigError;
using eqprop::test::check_contains;
using eqprop::test::thrown_message;
using nlohmann::json;

eqprop::HardwareConfig parse(const json& section) { return eqprop::parse_hardware_config(section, "cfg.json"); }

std::string error_of(const json& section) {
  return thrown_message<ConfigError>([&] { parse(section); });
}

}  // namespace

TEST_CASE("hardware: config defaults are all off and resolve every key") {
  const eqprop::HardwareConfig c = parse(json::object());
  CHECK_FALSE(c.any());
  CHECK_FALSE(c.writes_parameters());
  CHECK_FALSE(c.dac.enabled);
  CHECK(c.dac.bits == 8);
  CHECK(c.dac.range == eqprop::RangeMode::calibrated);
  CHECK(c.dac.convention == eqprop::LevelConvention::symmetric);
  CHECK(c.dac.rounding == eqprop::Rounding::nearest);
  CHECK(c.input_dac.range == eqprop::RangeMode::fixed);
  CHECK(c.input_dac.lo == 0.0f);
  CHECK(c.input_dac.hi == 1.0f);
  CHECK(c.input_dac.convention == eqprop::LevelConvention::asymmetric);
  CHECK(c.adc.convention == eqprop::LevelConvention::asymmetric);
  CHECK(c.adc.noise_sigma == 0.0f);
  CHECK(c.adc.noise_unit == eqprop::NoiseUnit::lsb);
  CHECK(c.programming_noise.additive == 0.0f);
  CHECK(c.programming_noise.multiplicative == 0.0f);
  CHECK(c.mismatch_sigma == 0.0f);
  CHECK(c.keep_full_precision);
  CHECK(c.resolved.at("dac").at("bits") == 8);
  CHECK(c.resolved.at("adc").at("noise_unit") == "lsb");
  CHECK(c.resolved.at("keep_full_precision") == true);
  // The struct's own defaults agree with the schema's.
  const eqprop::HardwareConfig plain;
  CHECK(plain.dac.range == c.dac.range);
  CHECK(plain.dac.convention == c.dac.convention);
  CHECK(plain.dac.lo == c.dac.lo);
  CHECK(plain.adc.hi == c.adc.hi);
}

TEST_CASE("hardware: config values are typed, and absent ones keep their defaults") {
  const json section = json::parse(R"({
    "dac": {"enabled": true, "bits": 4, "range": "fixed", "lo": -0.5, "hi": 0.5, "rounding": "stochastic"},
    "input_dac": {"enabled": true, "bits": 6},
    "adc": {"enabled": true, "bits": 3, "convention": "symmetric", "noise_sigma": 0.25, "noise_unit": "absolute"},
    "programming_noise": {"additive": 0.001, "multiplicative": 0.02},
    "mismatch_sigma": 0.05,
    "keep_full_precision": false
  })");
  const eqprop::HardwareConfig c = parse(section);
  CHECK(c.any());
  CHECK(c.writes_parameters());
  CHECK(c.dac.bits == 4);
  CHECK(c.dac.range == eqprop::RangeMode::fixed);
  CHECK(c.dac.lo == -0.5f);
  CHECK(c.dac.rounding == eqprop::Rounding::stochastic);
  CHECK(c.dac.convention == eqprop::LevelConvention::symmetric);  // default kept
  CHECK(c.input_dac.bits == 6);
  CHECK(c.adc.convention == eqprop::LevelConvention::symmetric);
  CHECK(c.adc.noise_sigma == 0.25f);
  CHECK(c.adc.noise_unit == eqprop::NoiseUnit::absolute);
  CHECK(c.programming_noise.additive == 0.001f);
  CHECK(c.programming_noise.multiplicative == 0.02f);
  CHECK(c.mismatch_sigma == 0.05f);
  CHECK_FALSE(c.keep_full_precision);
  CHECK(c.resolved.at("dac").at("hi") == 0.5);
  CHECK(c.resolved.at("adc").at("hi") == 1.0);
  // Noise or mismatch alone changes the parameters the dynamics see.
  CHECK(parse(json{{"mismatch_sigma", 0.01}}).writes_parameters());
  CHECK(parse(json{{"programming_noise", {{"additive", 0.01}}}}).writes_parameters());
  CHECK_FALSE(parse(json{{"adc", {{"enabled", true}}}}).writes_parameters());
}

TEST_CASE("hardware: config errors name the file, the key and the value") {
  check_contains(error_of(json{{"dac", {{"bitz", 4}}}}),
                 {"cfg.json: unknown config key 'hardware.dac.bitz'", "did you mean 'hardware.dac.bits'?"});
  check_contains(error_of(json{{"adcc", {{"bits", 4}}}}), {"cfg.json: unknown config key 'hardware.adcc'"});
  check_contains(error_of(json{{"dac", {{"bits", 17}}}}), {"cfg.json: hardware.dac.bits = 17 is out of range [1, 16]"});
  check_contains(error_of(json{{"dac", {{"bits", 0}}}}), {"hardware.dac.bits = 0 is out of range [1, 16]"});
  check_contains(error_of(json{{"adc", {{"bits", 4.5}}}}), {"cfg.json: hardware.adc.bits must be an integer, got 4.5"});
  check_contains(error_of(json{{"adc", {{"bits", "8"}}}}), {"hardware.adc.bits must be a number, got \"8\""});
  check_contains(error_of(json{{"dac", {{"enabled", "yes"}}}}),
                 {"cfg.json: hardware.dac.enabled must be true or false, got \"yes\""});
  check_contains(error_of(json{{"dac", {{"rounding", "up"}}}}),
                 {"hardware.dac.rounding = \"up\" is not one of: nearest, stochastic"});
  check_contains(error_of(json{{"adc", {{"noise_unit", "volts"}}}}),
                 {"hardware.adc.noise_unit = \"volts\" is not one of: lsb, absolute"});
  check_contains(error_of(json{{"mismatch_sigma", -0.1}}), {"hardware.mismatch_sigma = -0.1 is out of range [0, 1]"});
  check_contains(error_of(json{{"programming_noise", {{"multiplicative", 11}}}}),
                 {"hardware.programming_noise.multiplicative = 11 is out of range [0, 10]"});
  // Sections must be objects.
  check_contains(thrown_message<ConfigError>([] { eqprop::parse_hardware_config(json(3), "cfg.json"); }),
                 {"cfg.json: 'hardware' must be an object (a section), got 3"});
  check_contains(error_of(json{{"dac", 5}}), {"cfg.json: 'hardware.dac' must be an object (a section), got 5"});
  // Cross-key rules.
  check_contains(error_of(json{{"adc", {{"lo", 1.0}, {"hi", 0.5}}}}),
                 {"cfg.json: hardware.adc.lo = 1.0 must be below hardware.adc.hi = 0.5"});
  check_contains(error_of(json{{"input_dac", {{"lo", 0.5}, {"hi", 0.5}}}}), {"hardware.input_dac.lo = 0.5 must be below"});
  check_contains(error_of(json{{"dac", {{"enabled", true}, {"bits", 1}}}}),
                 {"hardware.dac.bits = 1 with hardware.dac.convention = \"symmetric\"", "at least 2 bits"});
  check_contains(error_of(json{{"adc", {{"noise_sigma", 0.5}}}}),
                 {"hardware.adc.noise_sigma = 0.5 needs hardware.adc.enabled = true"});
  // Allowed: 1 bit asymmetric; a calibrated range ignores lo/hi; lo/hi checked only when fixed.
  CHECK_NOTHROW(parse(json{{"adc", {{"enabled", true}, {"bits", 1}}}}));
  CHECK_NOTHROW(parse(json{{"dac", {{"enabled", true}, {"lo", 2.0}, {"hi", 1.0}}}}));
}

TEST_CASE("hardware: --set overrides reach nested keys with their schema types") {
  json user = json::object();
  eqprop::apply_override(user, "hardware.adc.bits=6");
  eqprop::apply_override(user, "hardware.adc.enabled=true");
  eqprop::apply_override(user, "hardware.dac.enabled=true");
  eqprop::apply_override(user, "hardware.dac.rounding=stochastic");
  eqprop::apply_override(user, "hardware.programming_noise.multiplicative=0.02");
  CHECK(user["hardware"]["adc"]["bits"] == 6);
  CHECK(user["hardware"]["dac"]["rounding"] == "stochastic");
  const eqprop::HardwareConfig c = parse(user["hardware"]);
  CHECK(c.adc.enabled);
  CHECK(c.adc.bits == 6);
  CHECK(c.programming_noise.multiplicative == 0.02f);
  check_contains(thrown_message<ConfigError>([&] { eqprop::apply_override(user, "hardware.adc.bitz=6"); }),
                 {"--set: unknown config key 'hardware.adc.bitz'", "did you mean 'hardware.adc.bits'?"});
  check_contains(thrown_message<ConfigError>([&] { eqprop::apply_override(user, "hardware.adc.bits=x"); }),
                 {"--set hardware.adc.bits=x: 'x' is not a valid value"});
  check_contains(thrown_message<ConfigError>([&] { eqprop::apply_override(user, "hardware.adc.bits=20"); }),
                 {"--set: hardware.adc.bits = 20 is out of range [1, 16]"});
  json bad = {{"hardware", {{"adc", 3}}}};
  check_contains(thrown_message<ConfigError>([&] { eqprop::apply_override(bad, "hardware.adc.bits=6"); }),
                 {"'hardware.adc' must be an object (a section), got 3"});
}

TEST_CASE("hardware: the config reference lists every hardware key with its default") {
  std::istringstream lines(eqprop::config_reference_markdown());
  std::string line, rows;
  int count = 0;
  while (std::getline(lines, line))
    if (line.rfind("| `hardware.", 0) == 0) rows += line + "\n", ++count;
  CHECK(count == 3 * 7 + 2 + 2 + 2);
  check_contains(rows, {"| `hardware.dac.bits` | `8` | [1, 16] |", "| `hardware.dac.convention` | `\"symmetric\"` |",
                        "| `hardware.adc.noise_unit` | `\"lsb\"` | `lsb`, `absolute` |",
                        "| `hardware.keep_full_precision` | `true` | true, false |"});
}

TEST_CASE("hardware: quantizer_spec turns a converter config into the op's spec") {
  eqprop::ConverterConfig converter;
  CHECK_FALSE(eqprop::quantizer_spec(converter, nullptr).enabled());
  converter.enabled = true;
  converter.bits = 5;
  const float range[2] = {0.0f, 2.0f};
  CHECK(eqprop::quantizer_spec(converter, range).range == nullptr);  // fixed: the range is ignored
  converter.range = eqprop::RangeMode::calibrated;
  const eqprop::QuantizerSpec spec = eqprop::quantizer_spec(converter, range);
  CHECK(spec.bits == 5);
  CHECK(spec.range == range);
}
