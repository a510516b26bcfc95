// The README's library example on a small in-memory dataset: parse a config, pick
// a backend, train two epochs, read the records. Prints "eqprop <version> ok".
#include <cstdio>
#include <random>
#include <string>

#include "engine/config.h"
#include "engine/training_run.h"
#include "eqprop_build_info.h"
#include "hosttools/dataset_files.h"
#include "kernels/error.h"

namespace {

// Class 0 bright on the left half of a 4x4 image, class 1 on the right.
eqprop::Dataset halves(int count, unsigned seed) {
  std::mt19937 rng(seed);
  eqprop::Dataset data;
  data.sample_shape = {1, 4, 4};
  data.num_classes = 2;
  for (int s = 0; s < count; ++s) {
    const int label = static_cast<int>(rng() % 2);
    data.labels.push_back(static_cast<std::uint8_t>(label));
    for (int pixel = 0; pixel < 16; ++pixel)
      data.pixels.push_back(static_cast<std::uint8_t>(((pixel % 4 < 2) == (label == 0) ? 160 : 0) + rng() % 90));
  }
  return data;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out_dir = argc > 1 ? argv[1] : "consumer_run";
  const nlohmann::json user = {{"model", {{"layers", {16, 12, 2}}}},
                               {"dynamics", {{"t_free", 10}, {"t_nudge", 4}, {"dt", 0.5}}},
                               {"training", {{"epochs", 2}, {"batch_size", 16}, {"eval_batch_size", 50}}}};
  try {
    const eqprop::Config config = eqprop::parse_config(user, "consumer");
    auto backend = eqprop::make_backend("cpu");
    const eqprop::DatasetSplits data{halves(320, 1), halves(100, 2)};
    eqprop::RunCallbacks callbacks;
    callbacks.on_epoch_end = [](const eqprop::EpochRecord& r) { std::printf("%d %.4f\n", r.epoch, r.test_acc); };
    const auto records = eqprop::run_training(*backend, config, data, out_dir, /*resume=*/false, callbacks);
    if (records.size() != 2) return 1;
  } catch (const eqprop::Error& error) {
    std::fprintf(stderr, "consumer: %s\n", error.what());
    return 1;
  }
  std::printf("eqprop %s ok\n", EQPROP_VERSION);
  return 0;
}
