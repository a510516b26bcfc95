// Tests of the host side of the minibatch pipeline (engine/batch_loader.h): the
// seeded sample order, the batches a BatchLoader hands out (sizes, order, coverage,
// normalization, one-hot targets), its independence of the ring depth, and a clean
// shutdown when the consumer stops early.
//
// The loader normalizes as pixel * (1 / (255 std)) - mean / std in float; the
// reference here is (pixel / 255 - mean) / std in double, held to 1e-6 of the
// magnitude |pixel / 255 / std| + |mean / std| (a few float roundings use ~2e-7).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/batch_loader.h"
#include "engine/dataset.h"
#include "kernels/backend.h"

namespace {

using eqprop::BatchLoader;
using eqprop::Dataset;
using eqprop::Normalization;

constexpr double kRelative = 1e-6;

// `count` samples of `shape`; sample s has a unique first pixel (s mod 256 for
// count <= 256) and a pattern that differs per channel, label s mod classes.
Dataset synthetic_dataset(int count, std::vector<int> shape, int classes) {
  Dataset d;
  d.sample_shape = std::move(shape);
  d.num_classes = classes;
  const std::int64_t size = d.sample_size();
  d.pixels.resize(static_cast<std::size_t>(count * size));
  d.labels.resize(static_cast<std::size_t>(count));
  const int channels = d.sample_shape[0];
  const std::int64_t per_channel = size / channels;
  for (int s = 0; s < count; ++s) {
    for (std::int64_t p = 0; p < size; ++p) {
      const std::int64_t c = p / per_channel;
      // Channel c lives in its own range so per-channel statistics differ.
      const int value = p == 0 ? s % 256 : static_cast<int>((40 * c + (s * 7 + p * 13) % 97) % 256);
      d.pixels[static_cast<std::size_t>(s * size + p)] = static_cast<std::uint8_t>(value);
    }
    d.labels[static_cast<std::size_t>(s)] = static_cast<std::uint8_t>(s % classes);
  }
  return d;
}

// What a loader handed out, copied off its staging buffers.
struct Batch {
  int size = 0;
  std::int64_t index = 0;
  std::vector<float> inputs, targets;
};

std::vector<Batch> drain(BatchLoader& loader, std::int64_t sample_size, int classes) {
  std::vector<Batch> out;
  while (const eqprop::HostBatch* b = loader.next()) {
    Batch copy;
    copy.size = b->size;
    copy.index = b->index;
    copy.inputs.assign(b->inputs, b->inputs + std::int64_t(b->size) * sample_size);
    copy.targets.assign(b->targets, b->targets + std::int64_t(b->size) * classes);
    out.push_back(std::move(copy));
    loader.release(b);
  }
  return out;
}

std::vector<Batch> load_all(const Dataset& data, const Normalization& normalization, int classes,
                            const BatchLoader::Options& options) {
  auto backend = eqprop::make_backend("cpu");
  BatchLoader loader(*backend, data, normalization, classes, options);
  std::vector<Batch> batches = drain(loader, data.sample_size(), classes);
  CHECK(static_cast<std::int64_t>(batches.size()) == loader.batch_count());
  CHECK(loader.next() == nullptr);  // and it stays at the end
  return batches;
}

BatchLoader::Options options_with(int batch_size, bool drop_last, bool shuffle = true, std::uint64_t seed = 7,
                                  std::uint32_t epoch = 0, int depth = 3, std::int64_t limit = 0) {
  BatchLoader::Options o;
  o.batch_size = batch_size;
  o.drop_last = drop_last;
  o.shuffle = shuffle;
  o.seed = seed;
  o.epoch = epoch;
  o.depth = depth;
  o.limit = limit;
  return o;
}

// Checks every batch row against the sample sample_order puts there: inputs
// (pixel / 255 - mean[c]) / std[c], targets one-hot of the label. Returns the
// samples seen, in order.
std::vector<std::int64_t> check_batches(const std::string& what, const std::vector<Batch>& batches,
                                        const Dataset& data, const Normalization& normalization, int classes,
                                        const std::vector<std::int64_t>& order, int batch_size) {
  const std::int64_t size = data.sample_size();
  const int channels = static_cast<int>(normalization.mean.size());
  const std::int64_t per_channel = size / channels;
  std::vector<std::int64_t> seen;
  double worst = 0.0;
  std::int64_t input_failures = 0, target_failures = 0;
  for (std::size_t n = 0; n < batches.size(); ++n) {
    const Batch& b = batches[n];
    CHECK(b.index == static_cast<std::int64_t>(n));
    for (int row = 0; row < b.size; ++row) {
      const std::size_t position = n * batch_size + row;
      REQUIRE(position < order.size());
      const std::int64_t sample = order[position];
      seen.push_back(sample);
      for (std::int64_t p = 0; p < size; ++p) {
        const int c = static_cast<int>(p / per_channel);
        const double pixel = data.pixels[static_cast<std::size_t>(sample * size + p)];
        const double mean = normalization.mean[c], deviation = normalization.std[c];
        const double expected = (pixel / 255.0 - mean) / deviation;
        const double budget = kRelative * (pixel / 255.0 / deviation + std::fabs(mean / deviation)) + 1e-12;
        const double used = std::fabs(b.inputs[row * size + p] - expected) / budget;
        worst = std::max(worst, used);
        if (!(used <= 1.0) && input_failures++ == 0)
          FAIL_CHECK(what << ": batch " << n << " row " << row << " pixel " << p << ": "
                          << b.inputs[row * size + p] << " vs " << expected);
      }
      for (int k = 0; k < classes; ++k) {
        const float expected = k == data.labels[static_cast<std::size_t>(sample)] ? 1.0f : 0.0f;
        if (b.targets[std::size_t(row) * classes + k] != expected && target_failures++ == 0)
          FAIL_CHECK(what << ": batch " << n << " row " << row << " target[" << k << "] wrong");
      }
    }
  }
  MESSAGE(what << ": inputs used " << worst * 100.0 << "% of their tolerance");
  CHECK(input_failures == 0);
  CHECK(target_failures == 0);
  return seen;
}

bool same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size != b[i].size || a[i].index != b[i].index || a[i].inputs != b[i].inputs ||
        a[i].targets != b[i].targets)
      return false;
  return true;
}

bool is_permutation_of_iota(const std::vector<std::int64_t>& order) {
  std::vector<std::int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i)
    if (sorted[i] != static_cast<std::int64_t>(i)) return false;
  return true;
}

// Runs `scenario` on its own thread; fails (instead of hanging the suite) if it
// does not finish within `seconds`. The scenario owns everything it touches.
template <class Fn>
void check_finishes(const std::string& what, Fn scenario, int seconds = 20) {
  std::packaged_task<void()> task(std::move(scenario));
  std::future<void> done = task.get_future();
  std::thread runner(std::move(task));
  if (done.wait_for(std::chrono::seconds(seconds)) == std::future_status::ready) {
    runner.join();
    done.get();  // rethrows what the scenario threw
  } else {
    runner.detach();  // stuck: leave it, report the hang
    FAIL_CHECK(what << " did not finish within " << seconds << " s (deadlock?)");
  }
}

}  // namespace

TEST_CASE("loader: sample_order is a seeded permutation, identity without shuffle") {
  for (std::int64_t count : {0, 1, 2, 3, 50, 1000}) {
    INFO("count " << count);
    const auto order = eqprop::sample_order(count, true, 7, 0);
    CHECK(static_cast<std::int64_t>(order.size()) == count);
    CHECK(is_permutation_of_iota(order));
    CHECK(eqprop::sample_order(count, true, 7, 0) == order);  // same (seed, epoch), same order
    std::vector<std::int64_t> identity(static_cast<std::size_t>(count));
    std::iota(identity.begin(), identity.end(), 0);
    CHECK(eqprop::sample_order(count, false, 7, 0) == identity);
    CHECK(eqprop::sample_order(count, false, 8, 3) == identity);
    if (count >= 50) {
      CHECK(order != identity);
      CHECK(eqprop::sample_order(count, true, 7, 1) != order);  // another epoch
      CHECK(eqprop::sample_order(count, true, 8, 0) != order);  // another seed
      CHECK(eqprop::sample_order(count, true, 7 + (std::uint64_t{1} << 32), 0) != order);  // seed's high word
    }
  }
}

TEST_CASE("loader: sample_order draws every permutation of 3 equally often") {
  // A Fisher-Yates shuffle with j in [0, i] gives each of the 6 orders with
  // probability 1/6 (a j in [0, i) would give only the 2 cyclic ones). Over
  // 12000 epochs: binomial counts, sigma = sqrt(n p (1 - p)), held to 5 sigma.
  constexpr int epochs = 12000;
  std::map<std::vector<std::int64_t>, int> counts;
  for (std::uint32_t epoch = 0; epoch < epochs; ++epoch) ++counts[eqprop::sample_order(3, true, 99, epoch)];
  CHECK(counts.size() == 6);
  const double expected = epochs / 6.0, sigma = std::sqrt(epochs * (1.0 / 6.0) * (5.0 / 6.0));
  double worst = 0.0;
  for (const auto& [order, n] : counts) worst = std::max(worst, std::fabs(n - expected) / (5.0 * sigma));
  MESSAGE("permutation counts: worst deviation used " << worst * 100.0 << "% of 5 sigma");
  CHECK(worst <= 1.0);

  // And for 10 samples: where sample 0 lands is uniform over the 10 positions.
  std::vector<int> landed(10, 0);
  for (std::uint32_t epoch = 0; epoch < epochs; ++epoch) {
    const auto order = eqprop::sample_order(10, true, 5, epoch);
    landed[std::find(order.begin(), order.end(), 0) - order.begin()]++;
  }
  const double e10 = epochs / 10.0, s10 = std::sqrt(epochs * 0.1 * 0.9);
  worst = 0.0;
  for (int n : landed) worst = std::max(worst, std::fabs(n - e10) / (5.0 * s10));
  MESSAGE("position of sample 0 among 10: worst deviation used " << worst * 100.0 << "% of 5 sigma");
  CHECK(worst <= 1.0);
}

TEST_CASE("loader: batch sizes with and without drop_last, every sample once per pass") {
  const int classes = 3;
  const Dataset data = synthetic_dataset(50, {1, 2, 3}, classes);
  const Normalization unit = Normalization::unit(1);
  const auto order = eqprop::sample_order(50, true, 7, 0);

  SUBCASE("drop_last: 6 batches of 8, the 2 left over are dropped") {
    const auto batches = load_all(data, unit, classes, options_with(8, true));
    REQUIRE(batches.size() == 6);
    for (const Batch& b : batches) CHECK(b.size == 8);
    const auto seen = check_batches("drop_last", batches, data, unit, classes, order, 8);
    CHECK(std::set<std::int64_t>(seen.begin(), seen.end()).size() == 48);
    CHECK(std::vector<std::int64_t>(order.begin(), order.begin() + 48) == seen);
  }
  SUBCASE("no drop_last: 7 batches, the last of 2") {
    const auto batches = load_all(data, unit, classes, options_with(8, false));
    REQUIRE(batches.size() == 7);
    for (std::size_t i = 0; i < 6; ++i) CHECK(batches[i].size == 8);
    CHECK(batches[6].size == 2);
    const auto seen = check_batches("no drop_last", batches, data, unit, classes, order, 8);
    CHECK(seen == order);
    CHECK(is_permutation_of_iota(seen));  // every sample exactly once
  }
  SUBCASE("the samples are identified from the inputs, not only from the order") {
    // Pixel 0 of sample s is s: decode it and compare with sample_order directly.
    const auto batches = load_all(data, unit, classes, options_with(8, false));
    std::vector<std::int64_t> decoded;
    for (const Batch& b : batches)
      for (int row = 0; row < b.size; ++row) decoded.push_back(std::lround(b.inputs[row * 6] * 255.0f));
    CHECK(decoded == order);
  }
  SUBCASE("no shuffle: the data set order") {
    const auto batches = load_all(data, unit, classes, options_with(8, false, false));
    std::vector<std::int64_t> identity(50);
    std::iota(identity.begin(), identity.end(), 0);
    CHECK(check_batches("no shuffle", batches, data, unit, classes, identity, 8) == identity);
  }
  SUBCASE("another epoch: another order, the one sample_order gives") {
    const auto batches = load_all(data, unit, classes, options_with(8, false, true, 7, 3));
    const auto order3 = eqprop::sample_order(50, true, 7, 3);
    CHECK(order3 != order);
    CHECK(check_batches("epoch 3", batches, data, unit, classes, order3, 8) == order3);
  }
  SUBCASE("a batch larger than the data set") {
    const auto kept = load_all(data, unit, classes, options_with(64, false));
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].size == 50);
    CHECK(load_all(data, unit, classes, options_with(64, true)).empty());
  }
}

TEST_CASE("loader: limit uses the first samples only") {
  const int classes = 3;
  const Dataset data = synthetic_dataset(50, {1, 2, 3}, classes);
  const Normalization unit = Normalization::unit(1);
  const auto order = eqprop::sample_order(20, true, 7, 0);
  const auto dropped = load_all(data, unit, classes, options_with(8, true, true, 7, 0, 3, 20));
  REQUIRE(dropped.size() == 2);
  const auto kept = load_all(data, unit, classes, options_with(8, false, true, 7, 0, 3, 20));
  REQUIRE(kept.size() == 3);
  CHECK(kept[2].size == 4);
  const auto seen = check_batches("limit 20", kept, data, unit, classes, order, 8);
  CHECK(is_permutation_of_iota(seen));  // exactly samples 0..19
  // A limit above the data set size is the whole set.
  CHECK(load_all(data, unit, classes, options_with(8, false, true, 7, 0, 3, 1000)).size() == 7);
}

TEST_CASE("loader: standardize computes per-data-set mean and std, the loader applies them") {
  const int classes = 3;
  const Dataset data = synthetic_dataset(50, {1, 2, 3}, classes);
  const Normalization standard = Normalization::standardize(data);
  REQUIRE(standard.mean.size() == 1);
  REQUIRE(standard.std.size() == 1);
  // Direct two-pass computation over all pixels.
  double sum = 0.0;
  for (std::uint8_t p : data.pixels) sum += p / 255.0;
  const double mean = sum / data.pixels.size();
  double squares = 0.0;
  for (std::uint8_t p : data.pixels) squares += (p / 255.0 - mean) * (p / 255.0 - mean);
  const double deviation = std::sqrt(squares / data.pixels.size());  // population std
  const double mean_used = std::fabs(standard.mean[0] - mean) / (kRelative * mean);
  const double std_used = std::fabs(standard.std[0] - deviation) / (kRelative * deviation);
  MESSAGE("standardize: mean used " << mean_used * 100.0 << "%, std used " << std_used * 100.0
                                    << "% of their tolerance");
  CHECK(mean_used <= 1.0);
  CHECK(std_used <= 1.0);

  const auto batches = load_all(data, standard, classes, options_with(8, false));
  check_batches("standardized", batches, data, standard, classes, eqprop::sample_order(50, true, 7, 0), 8);
  // Over a whole pass the standardized inputs have mean ~0 and variance ~1.
  double total = 0.0, total_squares = 0.0;
  std::int64_t n = 0;
  for (const Batch& b : batches)
    for (float x : b.inputs) total += x, total_squares += double(x) * x, ++n;
  CHECK(total / n == doctest::Approx(0.0).epsilon(1e-5).scale(1.0));
  CHECK(total_squares / n == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("loader: three channels are normalized per channel") {
  const int classes = 10;
  const Dataset data = synthetic_dataset(30, {3, 2, 2}, classes);
  const Normalization standard = Normalization::standardize(data);
  REQUIRE(standard.mean.size() == 3);
  const std::int64_t per_channel = 4;
  for (int c = 0; c < 3; ++c) {
    double sum = 0.0, squares = 0.0;
    std::int64_t n = 0;
    for (std::int64_t s = 0; s < data.count(); ++s)
      for (std::int64_t p = 0; p < per_channel; ++p, ++n) sum += data.pixels[s * 12 + c * per_channel + p] / 255.0;
    const double mean = sum / n;
    for (std::int64_t s = 0; s < data.count(); ++s)
      for (std::int64_t p = 0; p < per_channel; ++p) {
        const double v = data.pixels[s * 12 + c * per_channel + p] / 255.0 - mean;
        squares += v * v;
      }
    const double deviation = std::sqrt(squares / n);
    INFO("channel " << c);
    CHECK(standard.mean[c] == doctest::Approx(mean).epsilon(kRelative));
    CHECK(standard.std[c] == doctest::Approx(deviation).epsilon(kRelative));
  }
  // The channels' statistics differ, so mixing them up would show.
  CHECK(standard.mean[0] != standard.mean[1]);
  CHECK(standard.mean[1] != standard.mean[2]);

  const auto order = eqprop::sample_order(30, true, 7, 0);
  check_batches("3 channels, standardized", load_all(data, standard, classes, options_with(4, false)), data,
                standard, classes, order, 4);
  // Hand-picked per-channel values, far apart.
  const Normalization custom{{0.1f, 0.5f, 0.9f}, {0.2f, 0.3f, 0.4f}};
  check_batches("3 channels, custom", load_all(data, custom, classes, options_with(4, false)), data, custom,
                classes, order, 4);
}

TEST_CASE("loader: the ring depth does not change the batches") {
  const int classes = 3;
  const Dataset data = synthetic_dataset(50, {1, 2, 3}, classes);
  const Normalization standard = Normalization::standardize(data);
  const auto depth2 = load_all(data, standard, classes, options_with(8, false, true, 7, 0, 2));
  for (int depth : {1, 5, 100}) {
    INFO("depth " << depth);
    CHECK(same_batches(load_all(data, standard, classes, options_with(8, false, true, 7, 0, depth)), depth2));
  }
  CHECK(same_batches(load_all(data, standard, classes, options_with(8, true, true, 7, 0, 5)),
                     load_all(data, standard, classes, options_with(8, true, true, 7, 0, 2))));
}

TEST_CASE("loader: a consumer that stops early, or never starts, shuts the loader down cleanly") {
  const int classes = 3;
  auto data = std::make_shared<const Dataset>(synthetic_dataset(50, {1, 2, 3}, classes));
  for (int depth : {1, 2, 5}) {
    INFO("depth " << depth);
    check_finishes("destroy after one released batch", [data, depth] {
      auto backend = eqprop::make_backend("cpu");
      BatchLoader loader(*backend, *data, Normalization::unit(1), classes, options_with(8, false, true, 7, 0, depth));
      const eqprop::HostBatch* first = loader.next();
      REQUIRE(first != nullptr);
      CHECK(first->index == 0);
      loader.release(first);
    });
    check_finishes("destroy while holding one batch", [data, depth] {
      auto backend = eqprop::make_backend("cpu");
      BatchLoader loader(*backend, *data, Normalization::unit(1), classes, options_with(8, false, true, 7, 0, depth));
      REQUIRE(loader.next() != nullptr);
    });
    check_finishes("destroy without consuming", [data, depth] {
      auto backend = eqprop::make_backend("cpu");
      BatchLoader loader(*backend, *data, Normalization::unit(1), classes, options_with(8, false, true, 7, 0, depth));
    });
  }
  check_finishes("an empty pass (fewer samples than one batch, drop_last)", [data] {
    auto backend = eqprop::make_backend("cpu");
    BatchLoader loader(*backend, *data, Normalization::unit(1), classes, options_with(8, true, true, 7, 0, 3, 5));
    CHECK(loader.batch_count() == 0);
    CHECK(loader.next() == nullptr);
  });
}
