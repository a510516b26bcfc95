// fingerprint(Dataset) (engine/dataset.h), which the ranks of one run compare:
// equal for equal sets, different when any byte of shape, classes, labels or
// pixels differs.
#include <doctest/doctest.h>

#include "engine/dataset.h"

namespace eqprop {

TEST_CASE("dataset fingerprint: equal sets agree, any changed byte disagrees") {
  Dataset data;
  data.sample_shape = {1, 2, 2};
  data.num_classes = 3;
  data.pixels = {0, 10, 20, 30, 40, 50, 60, 70};
  data.labels = {1, 2};
  const std::uint64_t original = fingerprint(data);
  CHECK(fingerprint(Dataset(data)) == original);

  Dataset pixel = data;
  pixel.pixels[5] ^= 1;
  CHECK(fingerprint(pixel) != original);
  Dataset label = data;
  label.labels[0] = 0;
  CHECK(fingerprint(label) != original);
  Dataset shape = data;
  shape.sample_shape = {2, 2, 1};
  CHECK(fingerprint(shape) != original);
  Dataset classes = data;
  classes.num_classes = 4;
  CHECK(fingerprint(classes) != original);
}

}  // namespace eqprop
