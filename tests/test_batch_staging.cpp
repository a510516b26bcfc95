// BatchStaging (engine/batch_loader.h): the pinned buffers a run keeps for all its
// passes. Passes that borrow one staging yield the batches of loaders with their
// own, pass after pass, and a staging that does not fit a pass is refused.
#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "engine/batch_loader.h"
#include "engine/dataset.h"
#include "kernels/backend.h"

namespace eqprop {
namespace {

Dataset small_dataset(int count, int channels, int side, int classes) {
  Dataset d;
  d.sample_shape = {channels, side, side};
  d.num_classes = classes;
  d.pixels.resize(static_cast<std::size_t>(count * d.sample_size()));
  for (std::size_t i = 0; i < d.pixels.size(); ++i) d.pixels[i] = static_cast<std::uint8_t>((i * 37) % 251);
  for (int s = 0; s < count; ++s) d.labels.push_back(static_cast<std::uint8_t>(s % classes));
  return d;
}

// Every batch of a pass: inputs then targets, concatenated.
std::vector<float> pass_contents(BatchLoader& loader, const Dataset& data, int classes) {
  std::vector<float> all;
  while (const HostBatch* batch = loader.next()) {
    all.insert(all.end(), batch->inputs, batch->inputs + std::int64_t(batch->size) * data.sample_size());
    all.insert(all.end(), batch->targets, batch->targets + std::int64_t(batch->size) * classes);
    loader.release(batch);
  }
  return all;
}

TEST_CASE("batch staging: passes borrowing one staging yield the batches of loaders with their own") {
  auto backend = make_backend("cpu");
  const int classes = 4;
  const Dataset data = small_dataset(50, 2, 3, classes);
  const Normalization normalization = Normalization::standardize(data);
  BatchStaging staging(*backend, 3, 8, data.sample_size(), classes);
  const float* first_inputs = staging.inputs(0);
  for (std::uint32_t epoch = 0; epoch < 3; ++epoch) {
    BatchLoader::Options options;
    options.batch_size = epoch == 2 ? 6 : 8;  // a smaller batch fits as well
    options.epoch = epoch;
    options.depth = 3;
    options.drop_last = epoch != 1;
    BatchLoader own(*backend, data, normalization, classes, options);
    BatchLoader borrowed(staging, data, normalization, classes, options);
    CHECK(pass_contents(borrowed, data, classes) == pass_contents(own, data, classes));
  }
  CHECK(staging.inputs(0) == first_inputs);  // the same buffers all along
}

TEST_CASE("batch staging: a staging that does not fit the pass is refused") {
  auto backend = make_backend("cpu");
  const int classes = 4;
  const Dataset data = small_dataset(50, 2, 3, classes);
  const Normalization normalization = Normalization::standardize(data);
  BatchLoader::Options options;
  options.batch_size = 8;
  options.depth = 3;
  BatchStaging too_small_batch(*backend, 3, 4, data.sample_size(), classes);
  CHECK_THROWS_AS(BatchLoader(too_small_batch, data, normalization, classes, options), std::invalid_argument);
  BatchStaging too_few_slots(*backend, 2, 8, data.sample_size(), classes);
  CHECK_THROWS_AS(BatchLoader(too_few_slots, data, normalization, classes, options), std::invalid_argument);
  BatchStaging other_classes(*backend, 3, 8, data.sample_size(), classes + 1);
  CHECK_THROWS_AS(BatchLoader(other_classes, data, normalization, classes, options), std::invalid_argument);
}

}  // namespace
}  // namespace eqprop
