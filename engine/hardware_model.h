// The host side of the analog hardware model: turns a HardwareConfig into the ops of
// kernels/dac_write.h, kernels/adc_read.h and kernels/range_calibration.h and runs
// them on a backend, where a physical EP machine converts (DESIGN.md §1):
//   - write_parameter: after every optimizer step (and after init / resume), each
//     weight and bias tensor goes through the DAC, programming noise and mismatch;
//   - write_input: each input batch goes through the input DAC before set_input;
//   - read_states: each state the contrastive update or the prediction reads goes
//     through the ADC (readout noise, quantizer), in place, after the phases relax.
// Every call is a no-op where its part of the config is off, so with everything off
// nothing runs and results are bit-identical to a run without the hardware model.
//
// Random draws are keyed on (seed, stream, tensor id, element, write or read count);
// the tensor ids below keep the draws of different tensors apart.
#pragma once

#include <cstdint>

#include "engine/hardware_config.h"
#include "kernels/adc_read.h"
#include "kernels/backend.h"
#include "kernels/dac_write.h"
#include "kernels/sgd_momentum.h"
#include "kernels/device_buffer.h"

namespace eqprop {

// Tensor ids for hardware_index (kernels/analog_noise.h).
namespace hardware_tensor {
// Parameters: the ids models/parameter_init.h uses for its draws.
constexpr std::uint32_t weights(int l) { return 2u * static_cast<std::uint32_t>(l); }
constexpr std::uint32_t biases(int l) { return 2u * static_cast<std::uint32_t>(l) + 1u; }
constexpr std::uint32_t kTrainInput = 1u << 16;
constexpr std::uint32_t kEvalInput = (1u << 16) + 1u;
// States read by the ADC: one id per (phase, state layer).
enum class ReadPhase : std::uint32_t { free = 0, plus = 1, minus = 2, eval = 3 };
constexpr std::uint32_t state(ReadPhase phase, int layer) {
  return (1u << 17) + 256u * static_cast<std::uint32_t>(phase) + static_cast<std::uint32_t>(layer);
}
}  // namespace hardware_tensor

class HardwareModel {
 public:
  HardwareModel(Backend& backend, const HardwareConfig& config, std::uint64_t seed);

  const HardwareConfig& config() const { return config_; }
  bool writes_parameters() const { return config_.writes_parameters(); }
  bool writes_inputs() const { return config_.input_dac.enabled; }
  bool reads_states() const { return config_.adc.enabled; }
  // True when the ADC's range is fixed: then a reading depends on its element alone
  // and the relaxation can apply it inside its final step (EnergyModel::
  // fuses_readout). A calibrated range depends on every element of the final state,
  // so it needs the state complete first: read_states, a pass of its own.
  bool reads_in_step() const { return reads_states() && config_.adc.range == RangeMode::fixed; }
  // The ADC of the config for one tensor and read; range: the calibrated [min, max]
  // on the device, or null for the fixed range.
  AdcSpec adc_spec(const float* range, std::uint32_t tensor, DrawCount read_count) const;

  // One DAC write of a parameter tensor (count):
  //   effective = gain * (quantize(source) + programming noise)
  // and, when the config keeps no full-precision copy, source = quantize(source) +
  // programming noise (the device value the optimizer continues from).
  // effective may alias source only when keep_full_precision is false (else the
  // full-precision copy would be overwritten: std::invalid_argument).
  // write_count keys the noise and stochastic rounding: 0 for the write after
  // initialization, k + 1 for the write after the update of global batch k.
  void write_parameter(float* source, float* effective, std::int64_t count, std::uint32_t tensor,
                       DrawCount write_count);

  // The optimizer step `update` (whose weights are the optimizer's parameters, the
  // `source` of write_parameter) and the write of its result, fused
  // (kernels/sgd_dac_write.h): one pass with a fixed DAC range, an update pass
  // carrying the first range-reduction pass and a write pass with a calibrated one.
  // Bit-identical to running `update` and then write_parameter. Without a hardware
  // model it runs the update (and copies to effective if that is another array).
  void update_parameter(const SgdMomentumOp& update, float* effective, std::int64_t count, std::uint32_t tensor,
                        DrawCount write_count);
  // effective = gain * source, for a source that already holds device values (after
  // resuming with keep_full_precision = false: writing again would add noise twice).
  // With keep_full_precision = true, resume with write_parameter and the
  // write_count of the last write instead.
  void restore_parameter(const float* source, float* effective, std::int64_t count, std::uint32_t tensor);

  // device_x (count) = input DAC of x (count); may alias x. batch_key: e.g. the
  // global batch index (keys stochastic rounding).
  void write_input(const float* x, float* device_x, std::int64_t count, std::uint32_t tensor,
                   DrawCount batch_key);

  // The same conversion of host memory x (count), in place, on the calling thread:
  // the loader thread converts each batch as it prepares it (BatchLoader::Options::
  // convert_inputs). Bit-identical to write_input on the CPU backend and, since the
  // input DAC draws no normals, on the GPU. Touches no mutable state of this object,
  // so it may run concurrently with the device-side calls.
  void write_input_on_host(float* x, std::int64_t count, std::uint32_t tensor, std::uint32_t batch_key) const;
  // states (count) <- ADC read of states, in place. read_count: e.g. the global
  // batch index (keys readout noise and stochastic rounding).
  void read_states(float* states, std::int64_t count, std::uint32_t tensor, DrawCount read_count);

 private:
  // Grows a scratch buffer to at least `size` floats.
  void reserve(DeviceBuffer<float>& buffer, std::size_t size);
  DacWriteOp parameter_write(float* source, float* effective, std::int64_t count, std::uint32_t tensor,
                             DrawCount write_count, const float* range) const;
  void check_parameter_arrays(const float* source, const float* effective) const;
  // For a calibrated converter: [min, max] of x on the device (range_); else null.
  const float* calibrate(const ConverterConfig& converter, const float* x, std::int64_t count);

  Backend& backend_;
  HardwareConfig config_;
  std::uint64_t seed_;
  DeviceBuffer<float> range_;    // (2) [min, max] of the tensor being converted
  DeviceBuffer<float> scratch_;  // two ping-pong halves of (min, max) partials
  DeviceBuffer<float> partials_;  // (min, max) partials of the fused update pass
};

// Runs the MinMaxReduceOp passes that leave [min x, max x] in range (2) on the device.
// scratch holds at least 4 * range_calibration_parts(count) floats. count >= 1.
void calibrate_range(Backend& backend, const float* x, std::int64_t count, float* scratch, float* range);
// The same, continuing from (min, max) partials of `count` values each.
void reduce_range(Backend& backend, const float* min_source, const float* max_source, std::int64_t count,
                  float* scratch, float* range);

}  // namespace eqprop
