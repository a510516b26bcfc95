#include "engine/hardware_config.h"

#include "kernels/error.h"

namespace eqprop {
namespace {

using nlohmann::json;

ConverterConfig converter_from(const json& resolved, const std::string& name, const std::string& source) {
  auto at = [&](const std::string& leaf) -> const json& { return resolved.at(name).at(leaf); };
  const std::string p = "hardware." + name + ".";
  ConverterConfig c;
  c.enabled = at("enabled").get<bool>();
  c.bits = at("bits").get<int>();
  c.range = at("range") == "calibrated" ? RangeMode::calibrated : RangeMode::fixed;
  c.lo = at("lo").get<float>();
  c.hi = at("hi").get<float>();
  c.rounding = at("rounding") == "stochastic" ? Rounding::stochastic : Rounding::nearest;
  c.convention = at("convention") == "symmetric" ? LevelConvention::symmetric : LevelConvention::asymmetric;
  if (c.range == RangeMode::fixed && !(c.lo < c.hi))
    throw ConfigError(source + ": " + p + "lo = " + at("lo").dump() + " must be below " + p + "hi = " +
                      at("hi").dump());
  if (c.enabled && c.convention == LevelConvention::symmetric && c.bits < 2)
    throw ConfigError(source + ": " + p + "bits = " + at("bits").dump() + " with " + p +
                      "convention = \"symmetric\": 2^b-1 symmetric levels need at least 2 bits (1 bit leaves "
                      "the single level 0)");
  return c;
}

}  // namespace

HardwareConfig hardware_config_from(const json& hw, const std::string& source) {
  HardwareConfig config;
  config.dac = converter_from(hw, "dac", source);
  config.input_dac = converter_from(hw, "input_dac", source);
  static_cast<ConverterConfig&>(config.adc) = converter_from(hw, "adc", source);
  config.adc.noise_sigma = hw.at("adc").at("noise_sigma").get<float>();
  config.adc.noise_unit = hw.at("adc").at("noise_unit") == "absolute" ? NoiseUnit::absolute : NoiseUnit::lsb;
  if (config.adc.noise_sigma > 0.0f && !config.adc.enabled)
    throw ConfigError(source + ": hardware.adc.noise_sigma = " + hw.at("adc").at("noise_sigma").dump() +
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
