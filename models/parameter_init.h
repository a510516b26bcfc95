// The seeded initialization shared by the layered models: each element uniform in
// +-bound from the counter-based RNG, keyed on (seed, parameter_init, element,
// tensor id), so the same seed gives the same parameters on every backend. The
// layered models draw weights[l] and biases[l] with bound gain / sqrt(fan_in[l])
// (PyTorch nn.Linear's default, times a gain, as in the EP literature's code) and
// the tensor ids 2l (weights) and 2l + 1 (biases) (engine/hardware_model.h lists them).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/device_buffer.h"
#include "models/energy_model.h"

namespace eqprop {

// tensor = U(-bound, bound) per element, keyed on tensor_id.
void fill_uniform_parameters(DeviceBuffer<float>& tensor, std::uint64_t seed, std::uint32_t tensor_id, float bound);

// Every weights[l], biases[l] with bound gain / sqrt(fan_in[l]).
void initialize_uniform_fan_in(ParameterSet& parameters, const std::vector<int>& fan_in, std::uint64_t seed,
                               float gain);

}  // namespace eqprop
