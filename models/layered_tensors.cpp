#include "models/layered_tensors.h"

namespace eqprop {

ParameterSet make_layered_parameters(Backend& backend, const std::vector<int>& widths) {
  ParameterSet set;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    set.weights.emplace_back(backend, std::size_t(widths[l]) * widths[l + 1]);
    set.biases.emplace_back(backend, std::size_t(widths[l + 1]));
    set.weights.back().zero();
    set.biases.back().zero();
  }
  return set;
}

std::vector<std::int64_t> layered_tensor_shape(const std::vector<int>& widths, int l, bool bias) {
  if (bias) return {widths[l + 1]};
  return {widths[l], widths[l + 1]};
}

NetworkState make_layered_state(Backend& backend, const std::vector<int>& units, int max_batch, bool with_momenta) {
  NetworkState state;
  for (int layer_units : units) {
    const std::size_t size = std::size_t(max_batch) * layer_units;
    state.layers.emplace_back(backend, size);
    state.layers.back().zero();
    if (!with_momenta) continue;
    state.momenta.emplace_back(backend, size);
    state.momenta.back().zero();
  }
  return state;
}

void copy_state_rows(Backend& backend, const NetworkState& from, NetworkState& to, const std::vector<int>& units,
                     int batch) {
  for (std::size_t i = 0; i < units.size(); ++i)
    backend.copy_on_device(to.layers[i].data(), from.layers[i].data(), std::size_t(batch) * units[i] * sizeof(float));
}

void zero_rows(Backend& backend, std::vector<DeviceBuffer<float>>& arrays, const std::vector<int>& units, int batch) {
  for (std::size_t i = 0; i < arrays.size(); ++i)
    backend.fill_zero(arrays[i].data(), std::size_t(batch) * units[i] * sizeof(float));
}

}  // namespace eqprop
