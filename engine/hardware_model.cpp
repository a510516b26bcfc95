#include "engine/hardware_model.h"

#include <stdexcept>

#include "kernels/adc_read.h"
#include "kernels/dac_write.h"
#include "kernels/range_calibration.h"
#include "kernels/sgd_dac_write.h"

namespace eqprop {

void calibrate_range(Backend& backend, const float* x, std::int64_t count, float* scratch, float* range) {
  reduce_range(backend, x, x, count, scratch, range);
}

void reduce_range(Backend& backend, const float* min_source, const float* max_source, std::int64_t count,
                  float* scratch, float* range) {
  // Pass k reads (min, max) arrays of `count` values and writes `parts` of each,
  // into one half of scratch (ping-pong); the last pass (parts = 1) writes range.
  const std::int64_t half = 2 * range_calibration_parts(count);
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

void HardwareModel::reserve(DeviceBuffer<float>& buffer, std::size_t size) {
  if (buffer.size() >= size) return;
  backend_.synchronize();  // the old buffer may still be in use by queued passes
  buffer = DeviceBuffer<float>(backend_, size);
}

const float* HardwareModel::calibrate(const ConverterConfig& converter, const float* x, std::int64_t count) {
  if (!converter.enabled || converter.range != RangeMode::calibrated) return nullptr;
  reserve(scratch_, 4 * static_cast<std::size_t>(range_calibration_parts(count)));
  calibrate_range(backend_, x, count, scratch_.data(), range_.data());
  return range_.data();
}

DacWriteOp HardwareModel::parameter_write(float* source, float* effective, std::int64_t count, std::uint32_t tensor,
                                          DrawCount write_count, const float* range) const {
  return DacWriteOp{source,
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
}

void HardwareModel::check_parameter_arrays(const float* source, const float* effective) const {
  if (config_.keep_full_precision && effective == source)
    throw std::invalid_argument(
        "HardwareModel: with keep_full_precision the device copy must be a separate array from the optimizer's");
}

void HardwareModel::write_parameter(float* source, float* effective, std::int64_t count, std::uint32_t tensor,
                                    DrawCount write_count) {
  if (!writes_parameters() || count <= 0) {
    if (effective != source && count > 0)
      backend_.copy_on_device(effective, source, static_cast<std::size_t>(count) * sizeof(float));
    return;
  }
  check_parameter_arrays(source, effective);
  backend_.run(parameter_write(source, effective, count, tensor, write_count, calibrate(config_.dac, source, count)),
               count);
}

void HardwareModel::update_parameter(const SgdMomentumOp& update, float* effective, std::int64_t count,
                                     std::uint32_t tensor, DrawCount write_count) {
  if (count <= 0) return;
  float* source = update.weights;
  if (!writes_parameters()) {
    backend_.run(update, count);
    if (effective != source) backend_.copy_on_device(effective, source, static_cast<std::size_t>(count) * sizeof(float));
    return;
  }
  check_parameter_arrays(source, effective);
  if (!config_.dac.enabled || config_.dac.range != RangeMode::calibrated) {
    backend_.run(SgdDacWriteOp{update, parameter_write(source, effective, count, tensor, write_count, nullptr)}, count);
    return;
  }
  // The range of the updated tensor: the update with the first reduction pass,
  // the partials reduced, then the write (kernels/sgd_dac_write.h).
  const std::int64_t parts = range_calibration_parts(count);
  if (parts == 1) {
    backend_.run(SgdRangeOp{update, range_.data(), range_.data() + 1, count, 1}, 1);
  } else {
    reserve(partials_, 2 * static_cast<std::size_t>(parts));
    reserve(scratch_, 4 * static_cast<std::size_t>(range_calibration_parts(parts)));
    backend_.run(SgdRangeOp{update, partials_.data(), partials_.data() + parts, count, parts}, parts);
    reduce_range(backend_, partials_.data(), partials_.data() + parts, parts, scratch_.data(), range_.data());
  }
  backend_.run(parameter_write(source, effective, count, tensor, write_count, range_.data()), count);
}

void HardwareModel::restore_parameter(const float* source, float* effective, std::int64_t count,
                                      std::uint32_t tensor) {
  if (count <= 0) return;
  DacWriteOp op{source, nullptr, effective, quantizer_off(), 0.0f, 0.0f, config_.mismatch_sigma, seed_, tensor, 0,
                count};
  backend_.run(op, count);
}

void HardwareModel::write_input(const float* x, float* device_x, std::int64_t count, std::uint32_t tensor,
                                DrawCount batch_key) {
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

AdcSpec HardwareModel::adc_spec(const float* range, std::uint32_t tensor, DrawCount read_count) const {
  return AdcSpec{quantizer_spec(config_.adc, range), config_.adc.noise_sigma, config_.adc.noise_unit, seed_, tensor,
                 read_count};
}

void HardwareModel::write_input_on_host(float* x, std::int64_t count, std::uint32_t tensor,
                                        std::uint32_t batch_key) const {
  if (!writes_inputs() || count <= 0) return;
  // The calibration rule of kernels/range_calibration.h, on the host.
  const bool calibrated = config_.input_dac.range == RangeMode::calibrated;
  float range[2] = {x[0], x[0]};
  if (calibrated)
    for (std::int64_t i = 1; i < count; ++i) {
      range[0] = nan_propagating_min(range[0], x[i]);
      range[1] = nan_propagating_max(range[1], x[i]);
    }
  const DacWriteOp op{x, nullptr, x, quantizer_spec(config_.input_dac, calibrated ? range : nullptr), 0.0f, 0.0f, 0.0f,
                      seed_, tensor, batch_key, count};
  for (std::int64_t r = 0; r < op.row_count(count); ++r) op.row(r);
}

void HardwareModel::read_states(float* states, std::int64_t count, std::uint32_t tensor, DrawCount read_count) {
  if (!reads_states() || count <= 0) return;
  const float* range = calibrate(config_.adc, states, count);
  AdcReadOp op{states, states, adc_spec(range, tensor, read_count), count};
  backend_.run(op, count);
}

}  // namespace eqprop
