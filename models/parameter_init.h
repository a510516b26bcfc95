// The seeded initialization shared by the layered models: weights[l] and biases[l]
// uniform in +-gain / sqrt(fan_in[l]) (PyTorch nn.Linear's default, times a gain, as
// in the EP literature's code), drawn from the counter-based RNG with the tensor ids
// 2l (weights) and 2l + 1 (biases) (engine/hardware_model.h lists them).
#pragma once

#include <cstdint>
#include <vector>

#include "models/energy_model.h"

namespace eqprop {

void initialize_uniform_fan_in(ParameterSet& parameters, const std::vector<int>& fan_in, std::uint64_t seed,
                               float gain);

}  // namespace eqprop
