// The `hardware` section of a run config: the analog machine's DACs, ADC, write
// noise and device mismatch (DESIGN.md §1, hardware non-idealities; the math is in
// kernels/quantizer.h and kernels/analog_noise.h). Everything is off by default,
// and with everything off no hardware op runs, so results are bit-identical to a
// run without the section.
//
// Its keys are declared here (hardware_config_keys) and merged into the run
// config's schema (engine/config.cpp), so they are validated, overridden with --set
// and documented like every other key.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/analog_noise.h"
#include "kernels/quantizer.h"
#include "models/config_key.h"

namespace eqprop {

enum class RangeMode : int {
  fixed = 0,       // [lo, hi] from the config
  calibrated = 1,  // [min x, max x] of each tensor at each conversion (kernels/range_calibration.h)
};

// One converter (a DAC or an ADC).
struct ConverterConfig {
  bool enabled = false;
  int bits = 8;
  RangeMode range = RangeMode::fixed;
  float lo = 0.0f;  // fixed range
  float hi = 1.0f;
  Rounding rounding = Rounding::nearest;
  LevelConvention convention = LevelConvention::asymmetric;
};

struct AdcConfig : ConverterConfig {
  float noise_sigma = 0.0f;  // readout noise, 0: none
  NoiseUnit noise_unit = NoiseUnit::lsb;
};

struct ProgrammingNoiseConfig {
  float additive = 0.0f;        // sigma, in weight units
  float multiplicative = 0.0f;  // sigma relative to |w|
};

struct HardwareConfig {
  // Writes of the weights and biases: signed values, so symmetric levels (0 exact)
  // over a per-tensor calibrated range by default.
  ConverterConfig dac = [] {
    ConverterConfig c;
    c.range = RangeMode::calibrated;
    c.lo = -1.0f;
    c.convention = LevelConvention::symmetric;
    return c;
  }();
  // Writes of the inputs: unit-normalized pixels in [0, 1], so 2^b asymmetric levels
  // on the fixed range [0, 1] by default (8 bits reproduce 8-bit images exactly).
  ConverterConfig input_dac;
  // Reads of the unit states (in [0, 1]): 2^b asymmetric levels on [0, 1].
  AdcConfig adc;
  ProgrammingNoiseConfig programming_noise;
  float mismatch_sigma = 0.0f;
  // true: the optimizer updates its own full-precision copy and each write programs
  // the device from it; false: the device's written value is the only copy, and the
  // optimizer continues from it (updates below half an LSB vanish unless rounding
  // is stochastic; programming noise accumulates write after write).
  bool keep_full_precision = true;

  nlohmann::json resolved;  // the whole section, every key with its value

  // Anything that changes the parameters the dynamics see.
  bool writes_parameters() const {
    return dac.enabled || programming_noise.additive > 0.0f || programming_noise.multiplicative > 0.0f ||
           mismatch_sigma > 0.0f;
  }
  bool any() const { return writes_parameters() || input_dac.enabled || adc.enabled; }
};

// The keys of the "hardware" section, every part off by default (DESIGN.md §1).
std::vector<ConfigKey> hardware_config_keys();

// The typed hardware config of a resolved, schema-checked "hardware" section, with
// the checks that involve several keys. `source` names the file in error messages.
HardwareConfig hardware_config_from(const nlohmann::json& section, const std::string& source);

// The typed quantizer of a converter: bits 0 when disabled. `range` is the device
// [min, max] pair for a calibrated range (ignored for a fixed one).
QuantizerSpec quantizer_spec(const ConverterConfig& converter, const float* range);

}  // namespace eqprop
