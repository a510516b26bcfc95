// Training-set augmentation (engine/image_augmentation.h): the crop and flip
// against a naive pad-crop-mirror on an explicitly padded image, the draws (range,
// uniformity, determinism, independence of the two options), and the loader: off
// is bit-identical to no augmentation, on gives exactly the augmented samples, the
// same in every run and for any ring depth, only in the trainer's training passes,
// and the same after a resume.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "engine/batch_loader.h"
#include "engine/checkpoint.h"
#include "engine/image_augmentation.h"
#include "engine/safetensors.h"
#include "engine/trainer.h"
#include "engine/training_run.h"
#include "kernels/backend.h"
#include "kernels/error.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using Bytes = std::vector<std::uint8_t>;

// The torchvision recipe spelled out: zero-pad to (H + 2p, W + 2p), take the
// (H, W) window at (oy, ox), then mirror the window's columns.
Bytes naive_augment(const Bytes& image, int channels, int height, int width, int padding, const AugmentationDraw& d) {
  const int padded_h = height + 2 * padding, padded_w = width + 2 * padding;
  Bytes padded(std::size_t(channels) * padded_h * padded_w, 0);
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        padded[(std::size_t(c) * padded_h + y + padding) * padded_w + x + padding] =
            image[(std::size_t(c) * height + y) * width + x];
  Bytes window(image.size());
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        window[(std::size_t(c) * height + y) * width + x] =
            padded[(std::size_t(c) * padded_h + y + d.offset_y) * padded_w + x + d.offset_x];
  if (!d.flip) return window;
  Bytes mirrored(window.size());
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        mirrored[(std::size_t(c) * height + y) * width + x] = window[(std::size_t(c) * height + y) * width + width - 1 - x];
  return mirrored;
}

// Pixels 1..255 (never 0), so padding is always distinguishable from the image.
Bytes random_image(std::mt19937& rng, std::size_t size) {
  std::uniform_int_distribution<int> value(1, 255);
  Bytes image(size);
  for (auto& v : image) v = static_cast<std::uint8_t>(value(rng));
  return image;
}

Dataset random_images(int count, int channels, int height, int width, unsigned seed) {
  std::mt19937 rng(seed);
  Dataset data;
  data.sample_shape = {channels, height, width};
  data.num_classes = 10;
  data.pixels = random_image(rng, std::size_t(count) * channels * height * width);
  for (int s = 0; s < count; ++s) data.labels.push_back(static_cast<std::uint8_t>(s % 10));
  return data;
}

std::vector<std::vector<float>> loader_inputs(const Dataset& data, const Normalization& normalization,
                                              const BatchLoader::Options& options) {
  auto backend = make_backend("cpu");
  BatchLoader loader(*backend, data, normalization, data.num_classes, options);
  std::vector<std::vector<float>> batches;
  while (const HostBatch* batch = loader.next()) {
    batches.emplace_back(batch->inputs, batch->inputs + std::int64_t(batch->size) * data.sample_size());
    loader.release(batch);
  }
  return batches;
}

BatchLoader::Options loader_options(int padding, bool flip, std::uint32_t epoch = 0, int depth = 3) {
  BatchLoader::Options options;
  options.batch_size = 8;
  options.drop_last = false;
  options.seed = 21;
  options.epoch = epoch;
  options.depth = depth;
  options.augmentation = AugmentationOptions{padding, flip};
  return options;
}

}  // namespace

TEST_CASE("augmentation: crop and flip equal a naive pad, crop and mirror, for every offset") {
  std::mt19937 rng(1);
  const int shapes[][4] = {{3, 5, 7, 2}, {1, 4, 4, 4}, {3, 32, 32, 4}, {2, 3, 6, 5}};  // C, H, W, padding (> H too)
  for (const auto& shape : shapes) {
    const int channels = shape[0], height = shape[1], width = shape[2], padding = shape[3];
    const Bytes image = random_image(rng, std::size_t(channels) * height * width);
    Bytes out(image.size());
    int mismatches = 0;
    for (int oy = 0; oy <= 2 * padding; ++oy)
      for (int ox = 0; ox <= 2 * padding; ++ox)
        for (const bool flip : {false, true}) {
          const AugmentationDraw draw{oy, ox, flip};
          augment_image(image.data(), out.data(), channels, height, width, padding, draw);
          if (out != naive_augment(image, channels, height, width, padding, draw) && mismatches++ == 0)
            FAIL_CHECK("shape " << channels << "x" << height << "x" << width << " padding " << padding << ": offset ("
                                << oy << ", " << ox << ") flip " << flip << " differs");
        }
    CHECK(mismatches == 0);
  }
  // The centre without a flip is the identity; padding 0 with a flip is a pure mirror.
  const Bytes image = random_image(rng, 3 * 32 * 32);
  Bytes out(image.size());
  augment_image(image.data(), out.data(), 3, 32, 32, 4, AugmentationDraw{4, 4, false});
  CHECK(out == image);
  augment_image(image.data(), out.data(), 3, 32, 32, 0, AugmentationDraw{0, 0, true});
  CHECK(out[5] == image[31 - 5]);
  CHECK(out[2 * 1024 + 32 * 7 + 31] == image[2 * 1024 + 32 * 7]);
}

TEST_CASE("augmentation: draws are seeded, in range, uniform, and the two options independent") {
  const AugmentationOptions both{4, true}, crop_only{4, false}, flip_only{0, true}, off{0, false};
  std::vector<int> counts_y(9, 0), counts_x(9, 0);
  int flips = 0;
  const int samples = 18000;
  for (int s = 0; s < samples; ++s) {
    const AugmentationDraw d = draw_augmentation(both, 7, 3, s);
    REQUIRE(d.offset_y >= 0);
    REQUIRE(d.offset_y <= 8);
    REQUIRE(d.offset_x >= 0);
    REQUIRE(d.offset_x <= 8);
    ++counts_y[d.offset_y];
    ++counts_x[d.offset_x];
    flips += d.flip;
    // Same key, same draw; each option alone draws what it draws together.
    const AugmentationDraw again = draw_augmentation(both, 7, 3, s);
    CHECK((again.offset_y == d.offset_y && again.offset_x == d.offset_x && again.flip == d.flip));
    const AugmentationDraw crop = draw_augmentation(crop_only, 7, 3, s), flip = draw_augmentation(flip_only, 7, 3, s);
    CHECK((crop.offset_y == d.offset_y && crop.offset_x == d.offset_x && !crop.flip));
    CHECK((flip.offset_y == 0 && flip.offset_x == 0 && flip.flip == d.flip));
  }
  const double per_offset = samples / 9.0, sigma_offset = std::sqrt(samples * (1.0 / 9) * (8.0 / 9));
  for (int o = 0; o < 9; ++o) {
    test::check_within_sigmas("samples at offset_y " + std::to_string(o), counts_y[o], per_offset, sigma_offset);
    test::check_within_sigmas("samples at offset_x " + std::to_string(o), counts_x[o], per_offset, sigma_offset);
  }
  test::check_within_sigmas("flipped samples", flips, samples / 2.0, std::sqrt(samples * 0.25));
  // Off: the centre, no flip. Another epoch or seed: other draws.
  const AugmentationDraw none = draw_augmentation(off, 7, 3, 5);
  CHECK((none.offset_y == 0 && none.offset_x == 0 && !none.flip));
  int same_epoch = 0, same_seed = 0;
  for (int s = 0; s < 200; ++s) {
    const AugmentationDraw a = draw_augmentation(both, 7, 3, s), b = draw_augmentation(both, 7, 4, s),
                           c = draw_augmentation(both, 8, 3, s);
    same_epoch += a.offset_y == b.offset_y && a.offset_x == b.offset_x && a.flip == b.flip;
    same_seed += a.offset_y == c.offset_y && a.offset_x == c.offset_x && a.flip == c.flip;
  }
  CHECK(same_epoch < 20);  // 200 / 162 expected by chance
  CHECK(same_seed < 20);
}

TEST_CASE("augmentation: the loader's batches, off and on") {
  const Dataset data = random_images(37, 3, 8, 8, 4);
  const Normalization normalization = Normalization::standardize(data);
  const auto plain_options = [] {
    BatchLoader::Options options = loader_options(0, false);
    options.augmentation = AugmentationOptions{};
    return options;
  }();
  const auto plain = loader_inputs(data, normalization, plain_options);

  SUBCASE("off is bit-identical to a loader without augmentation") {
    const auto off = loader_inputs(data, normalization, loader_options(0, false));
    REQUIRE(off.size() == plain.size());
    for (std::size_t b = 0; b < off.size(); ++b) test::check_bit_exact("batch " + std::to_string(b), off[b], plain[b]);
  }
  SUBCASE("on: every row is the augmented sample, normalized like any other") {
    const BatchLoader::Options options = loader_options(3, true, 2);
    const auto on = loader_inputs(data, normalization, options);
    // The unaugmented loader normalizes exactly the same way, so a row of `on`
    // equals the row a plain loader makes from a data set holding the augmented image.
    const std::vector<std::int64_t> order = sample_order(data.count(), true, options.seed, options.epoch);
    Dataset augmented = data;
    for (std::int64_t s = 0; s < data.count(); ++s) {
      const AugmentationDraw draw = draw_augmentation(options.augmentation, options.seed, options.epoch, s);
      const Bytes image(data.pixels.begin() + s * data.sample_size(), data.pixels.begin() + (s + 1) * data.sample_size());
      const Bytes expected = naive_augment(image, 3, 8, 8, 3, draw);
      std::copy(expected.begin(), expected.end(), augmented.pixels.begin() + s * data.sample_size());
    }
    BatchLoader::Options reference_options = options;
    reference_options.augmentation = AugmentationOptions{};
    const auto reference = loader_inputs(augmented, normalization, reference_options);
    REQUIRE(on.size() == reference.size());
    for (std::size_t b = 0; b < on.size(); ++b)
      test::check_bit_exact("augmented batch " + std::to_string(b), on[b], reference[b]);
    // ...and augmentation really changed something.
    const auto unaugmented = loader_inputs(data, normalization, reference_options);
    std::size_t changed = 0;
    for (std::size_t b = 0; b < on.size(); ++b) changed += on[b] != unaugmented[b];
    CHECK(changed == on.size());
    // Same options, another run or ring depth: the same bits. Another epoch: other images.
    const auto rerun = loader_inputs(data, normalization, loader_options(3, true, 2, 2));
    for (std::size_t b = 0; b < on.size(); ++b) test::check_bit_exact("rerun batch " + std::to_string(b), rerun[b], on[b]);
    BatchLoader::Options next_epoch = options;
    next_epoch.epoch = 3;
    next_epoch.shuffle = false;
    BatchLoader::Options same_epoch_unshuffled = options;
    same_epoch_unshuffled.shuffle = false;
    CHECK(loader_inputs(data, normalization, next_epoch) != loader_inputs(data, normalization, same_epoch_unshuffled));
  }
  SUBCASE("a data set without (C, H, W) samples is refused") {
    Dataset flat = data;
    flat.sample_shape = {192};
    auto backend = make_backend("cpu");
    test::check_contains(test::thrown_message<ConfigError>([&] {
                           BatchLoader loader(*backend, flat, Normalization::unit(1), 10, loader_options(4, false));
                         }),
                         {"data.augment_crop_padding", "(channels, height, width)", "1 dimensions"});
  }
}

TEST_CASE("augmentation: the trainer augments training passes only") {
  const auto config_with = [](int padding, bool flip) {
    return parse_config(nlohmann::json{{"model", {{"layers", {16, 12, 2}}}},
                                       {"dynamics", {{"t_free", 10}, {"t_nudge", 4}}},
                                       {"training", {{"batch_size", 16}, {"eval_batch_size", 50}}},
                                       {"data", {{"augment_crop_padding", padding}, {"augment_flip", flip}}}},
                        "test");
  };
  const DatasetSplits data = test::halves();
  auto backend = make_backend("cpu");
  const Normalization unit = Normalization::unit(1);
  Trainer plain(*backend, config_with(0, false)), augmented(*backend, config_with(1, true));
  // Evaluation of the same initial model: identical, augmentation or not.
  const EvalResult a = plain.evaluate(data.test, unit, 0), b = augmented.evaluate(data.test, unit, 0);
  CHECK(a.loss == b.loss);
  CHECK(a.accuracy == b.accuracy);
  // Training: the augmented pass sees other inputs, so its running loss differs.
  const BatchResult trained_plain = plain.train_epoch(data.train, unit, 0, {});
  const BatchResult trained_augmented = augmented.train_epoch(data.train, unit, 0, {});
  CHECK(trained_plain.loss_sum != trained_augmented.loss_sum);
}

}  // namespace eqprop

namespace eqprop {

TEST_CASE("augmentation: a resumed augmented run equals an uninterrupted one, bit for bit") {
  const auto config_for = [](int epochs) {
    return parse_config(nlohmann::json{{"model", {{"layers", {16, 12, 2}}}},
                                       {"dynamics", {{"t_free", 10}, {"t_nudge", 4}}},
                                       {"optimizer", {{"lr", 0.1}}},
                                       {"training", {{"epochs", epochs}, {"batch_size", 16}, {"eval_batch_size", 50}}},
                                       {"data", {{"augment_crop_padding", 1}, {"augment_flip", true}}}},
                        "test");
  };
  auto backend = make_backend("cpu");
  test::TempDir straight, resumed;
  run_training(*backend, config_for(3), test::halves(), straight.path().string(), false, {});
  run_training(*backend, config_for(1), test::halves(), resumed.path().string(), false, {});
  run_training(*backend, config_for(3), test::halves(), resumed.path().string(), true, {});
  const SafetensorsFile a = read_safetensors((straight.path() / kModelFile).string());
  const SafetensorsFile b = read_safetensors((resumed.path() / kModelFile).string());
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [name, tensor] : a.tensors) {
    CAPTURE(name);
    CHECK(tensor.data == b.tensors.at(name).data);
  }
}

}  // namespace eqprop
