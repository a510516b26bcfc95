#include "models/parameter_init.h"

#include <cmath>

#include "kernels/philox.h"

namespace eqprop {

void fill_uniform_parameters(DeviceBuffer<float>& tensor, std::uint64_t seed, std::uint32_t tensor_id, float bound) {
  std::vector<float> host(tensor.size());
  for (std::size_t i = 0; i < host.size(); ++i) {
    const Philox4 words = random_words(seed, RngStream::parameter_init, i, tensor_id);
    host[i] = bound * (2.0f * uniform_from_word(words.v[0]) - 1.0f);
  }
  tensor.copy_from_host(host);
}

void initialize_uniform_fan_in(ParameterSet& parameters, const std::vector<int>& fan_in, std::uint64_t seed,
                               float gain) {
  for (std::size_t l = 0; l < parameters.weights.size(); ++l) {
    const float bound = gain / std::sqrt(static_cast<float>(fan_in[l]));
    fill_uniform_parameters(parameters.weights[l], seed, static_cast<std::uint32_t>(2 * l), bound);
    fill_uniform_parameters(parameters.biases[l], seed, static_cast<std::uint32_t>(2 * l + 1), bound);
  }
}

}  // namespace eqprop
