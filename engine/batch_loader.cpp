#include "engine/batch_loader.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "kernels/error.h"
#include "kernels/philox.h"

namespace eqprop {

Normalization Normalization::unit(int channels) {
  return Normalization{std::vector<float>(channels, 0.0f), std::vector<float>(channels, 1.0f)};
}

Normalization Normalization::standardize(const Dataset& data) {
  const int channels = data.sample_shape.empty() ? 1 : data.sample_shape[0];
  const std::int64_t per_channel = data.sample_size() / channels;
  std::vector<double> sum(channels, 0.0), sum_squares(channels, 0.0);
  for (std::int64_t s = 0; s < data.count(); ++s) {
    const std::uint8_t* pixels = data.pixels.data() + s * data.sample_size();
    for (int c = 0; c < channels; ++c)
      for (std::int64_t p = 0; p < per_channel; ++p) {
        const double v = pixels[c * per_channel + p] / 255.0;
        sum[c] += v;
        sum_squares[c] += v * v;
      }
  }
  Normalization result;
  const double n = static_cast<double>(data.count() * per_channel);
  for (int c = 0; c < channels; ++c) {
    const double mean = sum[c] / n;
    const double variance = std::max(sum_squares[c] / n - mean * mean, 1e-12);
    result.mean.push_back(static_cast<float>(mean));
    result.std.push_back(static_cast<float>(std::sqrt(variance)));
  }
  return result;
}

void require_fits_model(const Dataset& data, const std::string& split, std::int64_t model_inputs,
                        int model_classes) {
  if (data.sample_size() != model_inputs) {
    std::string shape;
    for (int d : data.sample_shape) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    throw DataError(split + "'s samples have " + std::to_string(data.sample_size()) + " values (" + shape +
                    ") but the model takes " + std::to_string(model_inputs) + " inputs");
  }
  if (data.num_classes > model_classes)
    throw DataError(split + " has " + std::to_string(data.num_classes) + " classes but the model has " +
                    std::to_string(model_classes) + " outputs");
}

std::vector<std::int64_t> sample_order(std::int64_t count, bool shuffle, std::uint64_t seed,
                                       std::uint32_t epoch) {
  std::vector<std::int64_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  for (std::int64_t i = count - 1; i > 0; --i) {
    const Philox4 words = random_words(seed, RngStream::shuffle, static_cast<std::uint64_t>(i), epoch);
    const std::uint64_t wide = (static_cast<std::uint64_t>(words.v[0]) << 32) | words.v[1];
    // Multiply-shift maps 64 random bits onto [0, i] without a visible modulo bias.
    const auto j = static_cast<std::int64_t>(
        (static_cast<unsigned __int128>(wide) * static_cast<std::uint64_t>(i + 1)) >> 64);
    std::swap(order[i], order[j]);
  }
  return order;
}

BatchStaging::BatchStaging(Backend& backend, int depth, int batch_size, std::int64_t sample_size, int classes)
    : batch_size_(batch_size), sample_size_(sample_size), classes_(classes) {
  for (int slot = 0; slot < depth; ++slot) {
    inputs_.emplace_back(backend, std::size_t(batch_size) * std::size_t(sample_size));
    targets_.emplace_back(backend, std::size_t(batch_size) * std::size_t(classes));
  }
}

BatchLoader::BatchLoader(Backend& backend, const Dataset& data, const Normalization& normalization,
                         int classes, const Options& options)
    : data_(data), normalization_(normalization), classes_(classes), options_(options) {
  const std::int64_t batches = batch_count_of(data, options);
  const int depth = static_cast<int>(std::min<std::int64_t>(std::max(1, options.depth), std::max<std::int64_t>(batches, 1)));
  own_staging_ = std::make_unique<BatchStaging>(backend, depth, options.batch_size, data.sample_size(), classes);
  start(*own_staging_);
}

BatchLoader::BatchLoader(BatchStaging& staging, const Dataset& data, const Normalization& normalization,
                         int classes, const Options& options)
    : data_(data), normalization_(normalization), classes_(classes), options_(options) {
  start(staging);
}

void BatchLoader::start(BatchStaging& staging) {
  const Dataset& data = data_;
  const Options& options = options_;
  if (options.augmentation.enabled()) {
    if (data.sample_shape.size() != 3)
      throw ConfigError("data augmentation (data.augment_crop_padding, data.augment_flip) needs images of shape "
                        "(channels, height, width); this data set's samples have " +
                        std::to_string(data.sample_shape.size()) + " dimensions");
    augmented_.resize(static_cast<std::size_t>(data.sample_size()));
  }
  std::int64_t count = data.count();
  if (options.limit > 0) count = std::min(count, options.limit);
  order_ = sample_order(count, options.shuffle, options.seed, options.epoch);
  batch_count_ = batch_count_of(data, options);
  next_to_consume_ = std::max<std::int64_t>(0, options.first_batch);
  const std::size_t depth = static_cast<std::size_t>(std::max(1, options.depth));
  slots_.resize(std::min<std::size_t>(depth, std::max<std::int64_t>(batch_count_, 1)));
  if (static_cast<std::size_t>(staging.depth()) < slots_.size() || staging.batch_size() < options.batch_size ||
      staging.sample_size() != data.sample_size() || staging.classes() != classes_)
    throw std::invalid_argument("BatchLoader: the staging (" + std::to_string(staging.depth()) + " slots of " +
                                std::to_string(staging.batch_size()) + " samples) does not fit the pass (" +
                                std::to_string(slots_.size()) + " slots of " + std::to_string(options.batch_size) +
                                " samples) or its sample size or classes differ");
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    slots_[slot].batch.inputs = staging.inputs(static_cast<int>(slot));
    slots_[slot].batch.targets = staging.targets(static_cast<int>(slot));
  }
  worker_ = std::thread([this] { produce(); });
}

std::int64_t BatchLoader::batch_count_of(const Dataset& data, const Options& options) {
  std::int64_t count = data.count();
  if (options.limit > 0) count = std::min(count, options.limit);
  return options.drop_last ? count / options.batch_size : (count + options.batch_size - 1) / options.batch_size;
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void BatchLoader::fill(HostBatch& batch, std::int64_t index) {
  const std::int64_t first = index * options_.batch_size;
  const std::int64_t available = static_cast<std::int64_t>(order_.size()) - first;
  batch.size = static_cast<int>(std::min<std::int64_t>(options_.batch_size, available));
  batch.index = index;
  const std::int64_t sample_size = data_.sample_size();
  const int channels = static_cast<int>(normalization_.mean.size());
  const std::int64_t per_channel = sample_size / channels;
  for (int b = 0; b < batch.size; ++b) {
    const std::int64_t sample = order_[first + b];
    const std::uint8_t* pixels = data_.pixels.data() + sample * sample_size;
    if (options_.augmentation.enabled()) {
      const std::vector<int>& shape = data_.sample_shape;
      augment_image(pixels, augmented_.data(), shape[0], shape[1], shape[2], options_.augmentation.crop_padding,
                    draw_augmentation(options_.augmentation, options_.seed, options_.epoch, sample));
      pixels = augmented_.data();
    }
    float* x = batch.inputs + std::int64_t(b) * sample_size;
    for (int c = 0; c < channels; ++c) {
      const float scale = 1.0f / (255.0f * normalization_.std[c]);
      const float shift = normalization_.mean[c] / normalization_.std[c];
      for (std::int64_t p = c * per_channel; p < (c + 1) * per_channel; ++p)
        x[p] = static_cast<float>(pixels[p]) * scale - shift;
    }
    float* y = batch.targets + std::int64_t(b) * classes_;
    std::fill(y, y + classes_, 0.0f);
    y[data_.labels[sample]] = 1.0f;
  }
  if (options_.convert_inputs) options_.convert_inputs(batch.inputs, std::int64_t(batch.size) * sample_size, index);
}

void BatchLoader::produce() {
  for (std::int64_t index = std::max<std::int64_t>(0, options_.first_batch); index < batch_count_; ++index) {
    Slot& slot = slots_[index % slots_.size()];
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || (!slot.ready && !slot.busy); });
      if (stop_) return;
    }
    fill(slot.batch, index);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot.ready = true;
    }
    changed_.notify_all();
  }
}

const HostBatch* BatchLoader::next() {
  if (next_to_consume_ >= batch_count_) return nullptr;
  Slot& slot = slots_[next_to_consume_ % slots_.size()];
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return slot.ready; });
  slot.ready = false;
  slot.busy = true;
  ++next_to_consume_;
  return &slot.batch;
}

void BatchLoader::release(const HostBatch* batch) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Slot& slot : slots_)
      if (&slot.batch == batch) slot.busy = false;
  }
  changed_.notify_all();
}

}  // namespace eqprop
