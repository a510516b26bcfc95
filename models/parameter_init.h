// Seeded parameter initialization shared by the models: U(-bound, bound) per
// element from the counter-based RNG, keyed on (seed, parameter_init, element,
// tensor id), so the same seed gives the same parameters on every backend.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/device_buffer.h"
#include "kernels/philox.h"

namespace eqprop {

inline void fill_uniform_parameters(DeviceBuffer<float>& tensor, std::uint64_t seed, std::uint32_t tensor_id,
                                    float bound) {
  std::vector<float> host(tensor.size());
  for (std::size_t i = 0; i < host.size(); ++i) {
    const Philox4 words = random_words(seed, RngStream::parameter_init, i, tensor_id);
    host[i] = bound * (2.0f * uniform_from_word(words.v[0]) - 1.0f);
  }
  tensor.copy_from_host(host);
}

}  // namespace eqprop
