#include "models/parameter_init.h"

#include <cmath>

#include "kernels/philox.h"

namespace eqprop {

void initialize_uniform_fan_in(ParameterSet& parameters, const std::vector<int>& fan_in, std::uint64_t seed,
                               float gain) {
  for (std::size_t l = 0; l < parameters.weights.size(); ++l) {
    const float bound = gain / std::sqrt(static_cast<float>(fan_in[l]));
    auto draw = [&](DeviceBuffer<float>& tensor, std::uint32_t tensor_id) {
      std::vector<float> host(tensor.size());
      for (std::size_t i = 0; i < host.size(); ++i) {
        const Philox4 words = random_words(seed, RngStream::parameter_init, i, tensor_id);
        host[i] = bound * (2.0f * uniform_from_word(words.v[0]) - 1.0f);
      }
      tensor.copy_from_host(host);
    };
    draw(parameters.weights[l], static_cast<std::uint32_t>(2 * l));
    draw(parameters.biases[l], static_cast<std::uint32_t>(2 * l + 1));
  }
}

}  // namespace eqprop
