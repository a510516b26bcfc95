#include "engine/hardware_model.h"

#include <stdexcept>

#include "kernels/adc_read.h"
#include "kernels/dac_write.h"
#include "kernels/range_calibration.h"

namespace eqprop {

void calibrate_range(Backend& backend, const float* x, std::int64_t count, float* scratch, float* range) {
  // Pass k reads (min, max) arrays of `count` values and writes `parts` of each,
  // into one half of scratch (ping-pong); the last pass (parts = 1) writes range.
  const std::int64_t half = 2 * range_calibration_parts(count);
  const float* min_source = x;
  const float* max_source = x;
  int side = 0;
  while (true) {
    const std::int64_t parts = range_calibration_parts(count);
    float* min_out = parts == 1 ? range : scratch + side * half;
    float* max_out = parts == 1 ? range + 1 : scratch + side * half + parts;
    backend.run(MinMaxReduceOp{min_source, max_source, min_out, max_out, count, parts}, parts);
    if (parts == 1) return;
    min_source = min_out;
    max_source = max_out;
    count = parts;
    side = 1 - side;
  }
}

HardwareModel::HardwareModel(Backend& backend, const HardwareConfig& config, std::uint64_t seed)
    : backend_(backend), config_(config), seed_(seed), range_(backend, 2) {}

const float* HardwareModel::calibrate(const ConverterConfig& converter, const float* x, std::int64_t count) {
  if (!converter.enabled || converter.range != RangeMode::calibrated) return nullptr;
  const std::size_t needed = 4 * static_cast<std::size_t>(range_calibration_parts(count));
  if (scratch_.size() < needed) {
    backend_.synchronize();  // the old scratch may still be in use by queued passes
    scratch_ = DeviceBuffer<float>(backend_, needed);
  }
  calibrate_range(backend_, x, count, scratch_.data(), range_.data());
  return range_.data();
}

void HardwareModel::write_parameter(float* source, float* effective, std::int64_t count, std::uint32_t tensor,
                                    std::uint32_t write_count) {
  if (!writes_parameters() || count <= 0) {
    if (effective != source && count > 0)
      backend_.copy_on_device(effective, source, static_cast<std::size_t>(count) * sizeof(float));
    return;
  }
  if (config_.keep_full_precision && effective == source)
    throw std::invalid_argument(
        "HardwareModel::write_parameter: with keep_full_precision the device copy must be a separate array");
  const float* range = calibrate(config_.dac, source, count);
  DacWriteOp op{source,
                config_.keep_full_precision ? nullptr : source,
                effective,
                quantizer_spec(config_.dac, range),
                config_.programming_noise.additive,
                config_.programming_noise.multiplicative,
                config_.mismatch_sigma,
                seed_,
                tensor,
                write_count,
                count};
  backend_.run(op, count);
}

void HardwareModel::restore_parameter(const float* source, float* effective, std::int64_t count,
                                      std::uint32_t tensor) {
  if (count <= 0) return;
  DacWriteOp op{source, nullptr, effective, quantizer_off(), 0.0f, 0.0f, config_.mismatch_sigma, seed_, tensor, 0,
                count};
  backend_.run(op, count);
}

void HardwareModel::write_input(const float* x, float* device_x, std::int64_t count, std::uint32_t tensor,
                                std::uint32_t batch_key) {
  if (count <= 0) return;
  if (!writes_inputs()) {
    if (device_x != x) backend_.copy_on_device(device_x, x, static_cast<std::size_t>(count) * sizeof(float));
    return;
  }
  const float* range = calibrate(config_.input_dac, x, count);
  DacWriteOp op{x, nullptr, device_x, quantizer_spec(config_.input_dac, range), 0.0f, 0.0f, 0.0f, seed_, tensor,
                batch_key, count};
  backend_.run(op, count);
}

void HardwareModel::read_states(float* states, std::int64_t count, std::uint32_t tensor, std::uint32_t read_count) {
  if (!reads_states() || count <= 0) return;
  const float* range = calibrate(config_.adc, states, count);
  AdcReadOp op{states,
               states,
               quantizer_spec(config_.adc, range),
               config_.adc.noise_sigma,
               config_.adc.noise_unit,
               seed_,
               tensor,
               read_count,
               count};
  backend_.run(op, count);
}

}  // namespace eqprop
