// The host side of the minibatch pipeline: a loader thread turns raw dataset bytes
// into normalized float batches and one-hot targets, in a (seeded) shuffled order,
// optionally augmented (random crop and flip, keyed on seed, epoch and sample),
// into a ring of pinned staging buffers, so compute never waits on decoding.
// Consumer protocol: next() -> upload -> release(); at most `depth` batches are in
// flight. One loader serves one pass over the data (an epoch).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/dataset.h"
#include "engine/image_augmentation.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"

namespace eqprop {

// x = (pixel / 255 - mean[c]) / std[c] per channel c.
struct Normalization {
  std::vector<float> mean;  // (channels)
  std::vector<float> std;   // (channels)

  static Normalization unit(int channels);
  // Per-channel mean and standard deviation of pixel / 255 over `data`.
  static Normalization standardize(const Dataset& data);
};

struct HostBatch {
  int size = 0;          // samples in this batch (the last one of an epoch may be short)
  std::int64_t index = 0;  // batch number within the pass
  float* inputs = nullptr;   // (size, sample_size)
  float* targets = nullptr;  // (size, classes) one-hot
};

// Throws DataError unless the samples of `data` fit a model that takes
// `model_inputs` values and has `model_classes` outputs. The loader sizes its
// buffers from the data and the trainer copies the model's sizes out of them, so
// a split whose samples are smaller than the model's input would be read past its
// end; every split a model sees is checked, not only the one it was built for.
// `split` names the data in the message ("the test split").
void require_fits_model(const Dataset& data, const std::string& split, std::int64_t model_inputs,
                        int model_classes);

// The order of a pass: identity, or a Fisher-Yates shuffle keyed on (seed, epoch)
// with the counter-based RNG, so a resumed run sees the same order.
std::vector<std::int64_t> sample_order(std::int64_t count, bool shuffle, std::uint64_t seed,
                                       std::uint32_t epoch);

// The pinned host buffers a loader fills: `depth` slots, each (batch_size,
// sample_size) inputs and (batch_size, classes) targets. Pinned allocations are
// slow and freeing pinned memory (cudaFreeHost) synchronizes the whole device, so
// a run allocates one set and lends it to the loader of every pass (Trainer)
// rather than one set per epoch.
class BatchStaging {
 public:
  BatchStaging(Backend& backend, int depth, int batch_size, std::int64_t sample_size, int classes);

  int depth() const { return static_cast<int>(inputs_.size()); }
  int batch_size() const { return batch_size_; }
  std::int64_t sample_size() const { return sample_size_; }
  int classes() const { return classes_; }
  float* inputs(int slot) { return inputs_[static_cast<std::size_t>(slot)].data(); }
  float* targets(int slot) { return targets_[static_cast<std::size_t>(slot)].data(); }

 private:
  int batch_size_;
  std::int64_t sample_size_;
  int classes_;
  std::vector<HostStagingBuffer<float>> inputs_, targets_;
};

class BatchLoader {
 public:
  struct Options {
    int batch_size = 128;
    bool shuffle = true;
    bool drop_last = true;
    std::uint64_t seed = 1;
    std::uint32_t epoch = 0;
    int depth = 3;
    std::int64_t limit = 0;  // use the first `limit` samples only (0: all)
    // The pass starts at this batch (a run resumed mid-epoch): the order and every
    // batch's contents are those of the whole pass, the earlier batches skipped.
    std::int64_t first_batch = 0;
    // Applied to every sample of the pass (the trainer sets it for training passes
    // only); needs sample_shape (channels, height, width).
    AugmentationOptions augmentation;
    // Applied to each batch's inputs (size * sample_size floats) after
    // normalization, on the loader thread: the hardware model's input DAC, so the
    // conversion rides on the loader's pass instead of adding one on the device.
    // Called with the batch number within the pass. Must be safe to call from the
    // loader thread while the consumer computes.
    std::function<void(float* inputs, std::int64_t count, std::int64_t batch_index)> convert_inputs;
  };

  // With its own staging for this pass.
  BatchLoader(Backend& backend, const Dataset& data, const Normalization& normalization,
              int classes, const Options& options);
  // Filling `staging`, which must outlive the loader and fit the pass: at least
  // options.depth slots (or the pass's batch count, if fewer) of at least
  // options.batch_size samples of data's sample size and `classes` classes;
  // std::invalid_argument otherwise.
  BatchLoader(BatchStaging& staging, const Dataset& data, const Normalization& normalization, int classes,
              const Options& options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  std::int64_t batch_count() const { return batch_count_; }
  // The batches a pass over `data` with `options` yields.
  static std::int64_t batch_count_of(const Dataset& data, const Options& options);
  // The next batch in order, or nullptr after the last. Blocks until it is ready.
  const HostBatch* next();
  // Returns the slot of `batch` to the loader.
  void release(const HostBatch* batch);

 private:
  void start(BatchStaging& staging);
  void produce();
  void fill(HostBatch& batch, std::int64_t index);

  const Dataset& data_;
  Normalization normalization_;
  int classes_;
  Options options_;
  std::vector<std::int64_t> order_;
  std::int64_t batch_count_ = 0;
  std::vector<std::uint8_t> augmented_;  // (sample_size) one augmented sample; loader thread only

  std::unique_ptr<BatchStaging> own_staging_;  // the first constructor's, else null

  struct Slot {
    HostBatch batch;  // its inputs and targets point into a staging slot
    bool ready = false;  // filled, not yet consumed
    bool busy = false;   // handed to the consumer, not yet released
  };
  std::vector<Slot> slots_;
  std::int64_t next_to_consume_ = 0;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace eqprop
