// Small synthetic datasets the training tests learn in seconds.
#pragma once

#include <cstdint>
#include <random>

#include "engine/dataset.h"

namespace eqprop {
namespace test {

// Two classes of 4x4 "images": class 0 bright on the left half, class 1 on the
// right, with noise. Linearly separable, so a few epochs of EP must learn it.
inline Dataset make_halves(int count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(0, 90);
  Dataset data;
  data.sample_shape = {1, 4, 4};
  data.num_classes = 2;
  for (int s = 0; s < count; ++s) {
    const int label = static_cast<int>(rng() % 2);
    data.labels.push_back(static_cast<std::uint8_t>(label));
    for (int row = 0; row < 4; ++row)
      for (int column = 0; column < 4; ++column) {
        const bool bright = (column < 2) == (label == 0);
        data.pixels.push_back(static_cast<std::uint8_t>((bright ? 160 : 0) + noise(rng)));
      }
  }
  return data;
}

// A training and a test split of make_halves.
inline DatasetSplits halves() { return DatasetSplits{make_halves(320, 1), make_halves(100, 2)}; }

}  // namespace test
}  // namespace eqprop
