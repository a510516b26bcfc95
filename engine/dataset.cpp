#include "engine/dataset.h"

#include "engine/distributed.h"

namespace eqprop {

std::uint64_t fingerprint(const Dataset& data) {
  std::uint64_t hash = fnv1a(data.sample_shape.data(), data.sample_shape.size() * sizeof(int));
  hash = fnv1a(&data.num_classes, sizeof data.num_classes, hash);
  hash = fnv1a(data.labels.data(), data.labels.size(), hash);
  return fnv1a(data.pixels.data(), data.pixels.size(), hash);
}

}  // namespace eqprop
