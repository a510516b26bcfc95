// An in-memory labelled image dataset, as the readers in hosttools/ produce it and
// the batch loader consumes it. Pixels stay raw bytes (0..255) until the loader
// normalizes them, so a 60000-image set costs 47 MB, not 188 MB.
#pragma once

#include <cstdint>
#include <vector>

namespace eqprop {

struct Dataset {
  // Per-sample shape, channels first: {1, 28, 28} for MNIST, {3, 32, 32} for CIFAR-10.
  std::vector<int> sample_shape;
  int num_classes = 10;
  std::vector<std::uint8_t> pixels;  // (count, prod(sample_shape)), channel-major per sample
  std::vector<std::uint8_t> labels;  // (count), each in [0, num_classes)

  std::int64_t count() const { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t sample_size() const {
    std::int64_t n = 1;
    for (int d : sample_shape) n *= d;
    return n;
  }
};

// A hash of every byte of the set (shape, classes, labels, pixels): ranks of one
// run check that they hold the same data (engine/training_run.cpp).
std::uint64_t fingerprint(const Dataset& data);

// The usual pair of splits.
struct DatasetSplits {
  Dataset train;
  Dataset test;
};

}  // namespace eqprop
