#include "engine/hardware_config.h"

#include "models/json_limits.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

using nlohmann::json;

constexpr Choice<RangeMode> kRangeModes[] = {{"fixed", RangeMode::fixed}, {"calibrated", RangeMode::calibrated}};
constexpr Choice<Rounding> kRoundings[] = {{"nearest", Rounding::nearest}, {"stochastic", Rounding::stochastic}};
constexpr Choice<LevelConvention> kConventions[] = {{"asymmetric", LevelConvention::asymmetric},
                                                    {"symmetric", LevelConvention::symmetric}};
constexpr Choice<NoiseUnit> kNoiseUnits[] = {{"lsb", NoiseUnit::lsb}, {"absolute", NoiseUnit::absolute}};

// The keys of one converter of the hardware model (DAC or ADC; kernels/quantizer.h).
// Ranges: bits [1, 16]; fixed range ends within +-1e6 (finite, so the level grid is).
void add_converter_keys(std::vector<ConfigKey>& keys, const std::string& name, const std::string& what,
                        const ConverterConfig& defaults, const std::string& range_help,
                        const std::string& convention_help) {
  const std::string p = "hardware." + name + ".";
  keys.push_back({p + "enabled", ConfigValueType::boolean, defaults.enabled, 0, 0, false, {},
                  "Quantize " + what + " through this converter."});
  keys.push_back({p + "bits", ConfigValueType::integer, defaults.bits, 1, kMaxQuantizerBits, false, {},
                  "Resolution in bits."});
  keys.push_back({p + "range", ConfigValueType::choice, choice_name(kRangeModes, defaults.range), 0, 0, false,
                  choice_names(kRangeModes), range_help});
  keys.push_back({p + "lo", ConfigValueType::number, defaults.lo, -1e6, 1e6, false, {},
                  "Low end of the fixed range."});
  keys.push_back({p + "hi", ConfigValueType::number, defaults.hi, -1e6, 1e6, false, {},
                  "High end of the fixed range (above lo)."});
  keys.push_back({p + "rounding", ConfigValueType::choice, choice_name(kRoundings, defaults.rounding), 0, 0, false,
                  choice_names(kRoundings),
                  "`nearest`: ties to even. `stochastic`: up with probability equal to the fraction of an LSB "
                  "(unbiased), from the seeded counter-based RNG."});
  keys.push_back({p + "convention", ConfigValueType::choice, choice_name(kConventions, defaults.convention), 0, 0,
                  false, choice_names(kConventions), convention_help});
}

ConverterConfig converter_from(const json& resolved, const std::string& name, const std::string& source) {
  auto at = [&](const std::string& leaf) -> const json& { return resolved.at(name).at(leaf); };
  const std::string p = "hardware." + name + ".";
  ConverterConfig c;
  c.enabled = at("enabled").get<bool>();
  c.bits = at("bits").get<int>();
  c.range = choice_value(kRangeModes, at("range"), source + ": " + p + "range");
  c.lo = at("lo").get<float>();
  c.hi = at("hi").get<float>();
  c.rounding = choice_value(kRoundings, at("rounding"), source + ": " + p + "rounding");
  c.convention = choice_value(kConventions, at("convention"), source + ": " + p + "convention");
  if (c.range == RangeMode::fixed && !(c.lo < c.hi))
    throw ConfigError(source + ": " + p + "lo = " + excerpt_json(at("lo")) + " must be below " + p + "hi = " +
                      excerpt_json(at("hi")));
  if (c.enabled && c.convention == LevelConvention::symmetric && c.bits < 2)
    throw ConfigError(source + ": " + p + "bits = " + excerpt_json(at("bits")) + " with " + p +
                      "convention = \"symmetric\": 2^b-1 symmetric levels need at least 2 bits (1 bit leaves "
                      "the single level 0)");
  return c;
}

}  // namespace

// The defaults are HardwareConfig's own (engine/hardware_config.h), so the struct
// and the schema cannot disagree.
std::vector<ConfigKey> hardware_config_keys() {
  const HardwareConfig defaults;
  std::vector<ConfigKey> keys;
  add_converter_keys(keys, "dac", "the weights and biases written to the device after each update", defaults.dac,
                     "`calibrated`: per tensor and write, [min, max] of the values (symmetric: +-max abs(w)). "
                     "`fixed`: [lo, hi].",
                     "`symmetric`: 2^b-1 levels k*r/(2^(b-1)-1), r = max(abs(lo), abs(hi)), 0 exact (signed "
                     "weights). `asymmetric`: 2^b levels spanning [lo, hi].");
  add_converter_keys(keys, "input_dac", "the inputs written to the device", defaults.input_dac,
                     "`fixed`: [lo, hi] (pixels / 255 live in [0, 1]). `calibrated`: per batch, [min, max] of the "
                     "inputs.",
                     "`asymmetric`: 2^b levels spanning [lo, hi] (8 bits on [0, 1] reproduce 8-bit pixels). "
                     "`symmetric`: 2^b-1 levels including 0 over [-r, r].");
  add_converter_keys(keys, "adc", "the unit states read out for the contrastive update and the prediction",
                     defaults.adc,
                     "`fixed`: [lo, hi] (states live in [0, 1]). `calibrated`: per layer, phase and batch, [min, "
                     "max] of the states.",
                     "`asymmetric`: 2^b levels spanning [lo, hi]. `symmetric`: 2^b-1 levels including 0 over "
                     "[-r, r].");
  keys.push_back({"hardware.adc.noise_sigma", ConfigValueType::number, defaults.adc.noise_sigma, 0, 1e6, false, {},
                  "Gaussian readout noise added before the ADC rounds (needs adc.enabled); unit: "
                  "`hardware.adc.noise_unit`."});
  keys.push_back({"hardware.adc.noise_unit", ConfigValueType::choice, choice_name(kNoiseUnits, defaults.adc.noise_unit),
                  0, 0, false, choice_names(kNoiseUnits),
                  "`lsb`: noise_sigma in LSB of the ADC. `absolute`: in state units."});
  keys.push_back({"hardware.programming_noise.additive", ConfigValueType::number,
                  defaults.programming_noise.additive, 0, 1e3, false, {},
                  "Gaussian noise on each weight/bias write, sigma in weight units; fresh at every write."});
  keys.push_back({"hardware.programming_noise.multiplicative", ConfigValueType::number,
                  defaults.programming_noise.multiplicative, 0, 10, false, {},
                  "Gaussian noise on each write proportional to the value: sigma * abs(w) (0.02: 2%)."});
  keys.push_back({"hardware.mismatch_sigma", ConfigValueType::number, defaults.mismatch_sigma, 0, 1, false, {},
                  "Device-to-device mismatch: each weight/bias has a fixed gain 1 + sigma * N(0, 1), drawn once "
                  "from the seed."});
  keys.push_back({"hardware.keep_full_precision", ConfigValueType::boolean, defaults.keep_full_precision, 0, 0, false,
                  {},
                  "true: the optimizer keeps a full-precision copy and programs the device from it. false: the "
                  "device holds the only copy and updates continue from the written value."});
  return keys;
}

HardwareConfig hardware_config_from(const json& hw, const std::string& source) {
  HardwareConfig config;
  config.dac = converter_from(hw, "dac", source);
  config.input_dac = converter_from(hw, "input_dac", source);
  static_cast<ConverterConfig&>(config.adc) = converter_from(hw, "adc", source);
  config.adc.noise_sigma = hw.at("adc").at("noise_sigma").get<float>();
  config.adc.noise_unit =
      choice_value(kNoiseUnits, hw.at("adc").at("noise_unit"), source + ": hardware.adc.noise_unit");
  if (config.adc.noise_sigma > 0.0f && !config.adc.enabled)
    throw ConfigError(source + ": hardware.adc.noise_sigma = " + excerpt_json(hw.at("adc").at("noise_sigma")) +
                      " needs hardware.adc.enabled = true (the noise is added where the ADC reads)");
  config.programming_noise.additive = hw.at("programming_noise").at("additive").get<float>();
  config.programming_noise.multiplicative = hw.at("programming_noise").at("multiplicative").get<float>();
  config.mismatch_sigma = hw.at("mismatch_sigma").get<float>();
  config.keep_full_precision = hw.at("keep_full_precision").get<bool>();
  config.resolved = hw;
  return config;
}

QuantizerSpec quantizer_spec(const ConverterConfig& converter, const float* range) {
  if (!converter.enabled) return quantizer_off();
  return QuantizerSpec{converter.bits, converter.convention, converter.rounding, converter.lo, converter.hi,
                       converter.range == RangeMode::calibrated ? range : nullptr};
}

}  // namespace eqprop
