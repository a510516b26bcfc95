// The arrays of a layered model, shaped by layer widths: the parameters of a stack
// of dense couplings (weights[l] (widths[l], widths[l+1]) row-major, biases[l]
// (widths[l+1])) and the batch state (one (max_batch, units[i]) array per state
// layer). The dense Hopfield network, the oscillator network and the Ising machine
// build their parameters from them, and every model its state; what differs between
// the models (what a unit is, how it relaxes) stays in the model.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "models/energy_model.h"

namespace eqprop {

// Zeroed weights[l] (widths[l], widths[l+1]) and biases[l] (widths[l+1]) for every
// consecutive pair of widths.
ParameterSet make_layered_parameters(Backend& backend, const std::vector<int>& widths);

// The shape of weights[l] (bias = false) or biases[l] (bias = true) of
// make_layered_parameters(widths), outermost first.
std::vector<std::int64_t> layered_tensor_shape(const std::vector<int>& widths, int l, bool bias);

// One zeroed (max_batch, units[i]) array per state layer and, for second-order
// dynamics (with_momenta), a zeroed momentum array shaped like each; first-order
// models keep no momenta.
NetworkState make_layered_state(Backend& backend, const std::vector<int>& units, int max_batch, bool with_momenta);

// Rows [0, batch) of every state layer, from `from` to `to`; units[i] is layer i's.
void copy_state_rows(Backend& backend, const NetworkState& from, NetworkState& to, const std::vector<int>& units,
                     int batch);

// Sets rows [0, batch) of arrays[i], (max_batch, units[i]) each, to 0.
void zero_rows(Backend& backend, std::vector<DeviceBuffer<float>>& arrays, const std::vector<int>& units, int batch);

}  // namespace eqprop
