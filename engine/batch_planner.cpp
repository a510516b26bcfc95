#include "engine/batch_planner.h"

#include <algorithm>
#include <cstdio>

#include "engine/trainer.h"
#include "kernels/device_buffer.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

// The two batch sizes measured: small, so planning costs little, and apart, so
// the difference is the per-system part times 2.
constexpr int kFirstBatch = 2, kSecondBatch = 4;
constexpr std::int64_t kLargestBatch = 65536;  // the schema's bound on the batch sizes

std::string gib(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

std::int64_t peak_since(Backend& backend, std::size_t before) {
  backend.synchronize();
  return static_cast<std::int64_t>(backend.memory_usage().peak_bytes) - static_cast<std::int64_t>(before);
}

}  // namespace

nlohmann::json BatchPlan::to_json() const {
  return nlohmann::json{{"backend", backend},
                        {"device", device},
                        {"measured_batches", {measured_batch[0], measured_batch[1]}},
                        {"measured_bytes", {measured_bytes[0], measured_bytes[1]}},
                        {"bytes_per_system", bytes_per_system},
                        {"fixed_bytes", fixed_bytes},
                        {"available_bytes", available_bytes},
                        {"available_from", available_given ? "--memory-gib" : "device free memory"},
                        {"safety_margin", safety_margin},
                        {"usable_bytes", usable_bytes},
                        {"max_batch", max_batch},
                        {"configured_batch", configured_batch},
                        {"configured_bytes", configured_bytes},
                        {"fits", fits}};
}

std::int64_t measure_trainer_bytes(Backend& backend, const Config& config, int batch) {
  Config sized = config;
  sized.training.batch_size = sized.training.eval_batch_size = batch;
  // One step per phase exercises every buffer the phases allocate; the count of
  // steps changes no buffer size.
  sized.dynamics.t_free = sized.dynamics.t_nudge = 1;
  sized.dynamics.tolerance = 0.0f;
  backend.synchronize();
  const std::size_t before = backend.memory_usage().current_bytes;
  backend.reset_peak_memory();
  Trainer trainer(backend, sized);
  const std::int64_t construction = peak_since(backend, before);
  // The step's inputs are the caller's in a real run (the trainer's own upload
  // slots are already counted), so their bytes are taken out of the step's peak.
  DeviceBuffer<float> x(backend, std::size_t(batch) * trainer.model().input_size());
  DeviceBuffer<float> target(backend, std::size_t(batch) * trainer.model().classes());
  x.zero();
  target.zero();
  backend.reset_peak_memory();
  trainer.train_step(x.data(), target.data(), batch, 0, 1.0f);
  const std::int64_t step = peak_since(backend, before) - static_cast<std::int64_t>(x.bytes() + target.bytes());
  return std::max(construction, step);
}

BatchPlan plan_batch(Backend& backend, const Config& config, std::optional<std::int64_t> available_bytes) {
  BatchPlan plan;
  plan.backend = backend.name();
  plan.device = backend.device_name();
  plan.measured_batch[0] = kFirstBatch;
  plan.measured_batch[1] = kSecondBatch;
  for (int i = 0; i < 2; ++i) plan.measured_bytes[i] = measure_trainer_bytes(backend, config, plan.measured_batch[i]);
  const std::int64_t difference = plan.measured_bytes[1] - plan.measured_bytes[0];
  const std::int64_t systems = kSecondBatch - kFirstBatch;
  // Rounded up: a model whose buffers are not exactly linear is over-, never
  // under-estimated per system.
  plan.bytes_per_system = std::max<std::int64_t>(0, (difference + systems - 1) / systems);
  plan.fixed_bytes = std::max<std::int64_t>(0, plan.measured_bytes[0] - plan.bytes_per_system * kFirstBatch);

  plan.available_given = available_bytes.has_value();
  plan.available_bytes = available_bytes ? *available_bytes
                                         : static_cast<std::int64_t>(backend.device_memory().free_bytes);
  plan.safety_margin = kPlannerSafetyMargin;
  plan.usable_bytes = static_cast<std::int64_t>(static_cast<double>(plan.available_bytes) * (1.0 - plan.safety_margin));
  const std::int64_t room = plan.usable_bytes - plan.fixed_bytes;
  plan.max_batch = room < 0 ? 0 : plan.bytes_per_system == 0 ? kLargestBatch
                                                            : std::min(kLargestBatch, room / plan.bytes_per_system);
  plan.configured_batch = std::max(config.training.batch_size, config.training.eval_batch_size);
  plan.configured_bytes = plan.fixed_bytes + plan.bytes_per_system * plan.configured_batch;
  plan.fits = plan.configured_bytes <= plan.usable_bytes;
  return plan;
}

void check_batch_fits(const BatchPlan& plan) {
  if (plan.fits) return;
  const std::string where = plan.available_given ? "the " + gib(plan.available_bytes) + " given"
                                                 : gib(plan.available_bytes) + " free on " + plan.device;
  throw ConfigError("the batch does not fit in device memory: training.batch_size / eval_batch_size up to " +
                    std::to_string(plan.configured_batch) + " systems need " + gib(plan.configured_bytes) + " (" +
                    std::to_string(plan.fixed_bytes) + " fixed bytes + " + std::to_string(plan.bytes_per_system) +
                    " bytes per system), more than " + gib(plan.usable_bytes) + " usable of " + where + " (" +
                    std::to_string(static_cast<int>(plan.safety_margin * 100)) +
                    "% kept free); the largest batch that fits is " + std::to_string(plan.max_batch) +
                    ": lower training.batch_size and training.eval_batch_size (eqprop plan --config FILE prints "
                    "the estimate)");
}

}  // namespace eqprop
