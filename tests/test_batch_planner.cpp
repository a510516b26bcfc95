// The batch-size planner (engine/batch_planner.h) and what it measures with: the
// backends' allocation counter and device_memory(). The per-system estimate from
// batches 2 and 4 must predict a third measured batch exactly (every buffer is
// affine in the batch); the plan's largest batch is the last that fits; a batch
// that does not fit is refused with the numbers that explain why.
#include <doctest/doctest.h>

#include <cstdint>

#include "engine/batch_planner.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/error.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

Config planner_config(const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json user{{"model", {{"layers", {64, 40, 30, 10}}}},
                      {"training", {{"batch_size", 32}, {"eval_batch_size", 100}}}};
  user.merge_patch(extra);
  return parse_config(user, "test");
}

}  // namespace

TEST_CASE("planner: the CPU backend counts device bytes, current and peak") {
  auto backend = make_backend("cpu");
  const MemoryUsage start = backend->memory_usage();
  {
    DeviceBuffer<float> a(*backend, 1000);
    {
      DeviceBuffer<float> b(*backend, 250);
      CHECK(backend->memory_usage().current_bytes == start.current_bytes + 5000);
    }
    CHECK(backend->memory_usage().current_bytes == start.current_bytes + 4000);
    CHECK(backend->memory_usage().peak_bytes >= start.current_bytes + 5000);
    backend->reset_peak_memory();
    CHECK(backend->memory_usage().peak_bytes == start.current_bytes + 4000);
    // Host staging memory is not device memory.
    HostStagingBuffer<float> staging(*backend, 1 << 16);
    CHECK(backend->memory_usage().current_bytes == start.current_bytes + 4000);
  }
  CHECK(backend->memory_usage().current_bytes == start.current_bytes);
  const DeviceMemory memory = backend->device_memory();
  CHECK(memory.total_bytes > 0);
  CHECK(memory.free_bytes <= memory.total_bytes);
}

TEST_CASE("planner: bytes per system from two batches predict a third exactly") {
  auto backend = make_backend("cpu");
  const nlohmann::json variants[] = {
      nlohmann::json::object(),
      {{"model", {{"cost", "cross_entropy"}}}},
      {{"dynamics", {{"integrator", "csb"}}}},
      {{"hardware", {{"input_dac", {{"enabled", true}}}, {"dac", {{"enabled", true}}}}}}};
  for (const nlohmann::json& variant : variants) {
    CAPTURE(variant.dump());
    const Config config = planner_config(variant);
    const BatchPlan plan = plan_batch(*backend, config, std::int64_t{1} << 30);
    CHECK(plan.bytes_per_system > 0);
    CHECK(plan.fixed_bytes > 0);
    for (const int batch : {7, 33}) {
      const std::int64_t measured = measure_trainer_bytes(*backend, config, batch);
      CHECK(measured == plan.fixed_bytes + plan.bytes_per_system * batch);
    }
    CHECK(backend->memory_usage().current_bytes == 0);  // the measurements freed everything
  }
  // The dense 64-40-30-10 network's per-system bytes, counted by hand: three states
  // (free, +, -) of 40 + 30 + 10 units, the two upload slots of inputs (64) and
  // targets (10), loss, correct and energy (1 each), at 4 bytes: the model's own
  // per-system scratch comes on top and the counter finds it without being told.
  const BatchPlan plan = plan_batch(*backend, planner_config(), std::int64_t{1} << 30);
  const std::int64_t known = 4 * (3 * (40 + 30 + 10) + 2 * (64 + 10) + 3);
  MESSAGE("bytes per system: " << plan.bytes_per_system << " (states, slots and metrics alone: " << known << ")");
  CHECK(plan.bytes_per_system >= known);
}

TEST_CASE("planner: the largest batch is the last one that fits the usable memory") {
  auto backend = make_backend("cpu");
  const Config config = planner_config();
  const BatchPlan probe = plan_batch(*backend, config, std::int64_t{1} << 30);
  // Memory for exactly 500 systems after the margin: 500 fits, 501 does not.
  const std::int64_t usable = probe.fixed_bytes + 500 * probe.bytes_per_system;
  const auto available = static_cast<std::int64_t>(usable / (1.0 - kPlannerSafetyMargin)) + 1;
  const BatchPlan plan = plan_batch(*backend, config, available);
  CHECK(plan.max_batch == 500);
  CHECK(plan.fixed_bytes + plan.max_batch * plan.bytes_per_system <= plan.usable_bytes);
  CHECK(plan.fixed_bytes + (plan.max_batch + 1) * plan.bytes_per_system > plan.usable_bytes);
  CHECK(plan.configured_batch == 100);  // max(batch_size 32, eval_batch_size 100)
  CHECK(plan.fits);
  CHECK_NOTHROW(check_batch_fits(plan));
  const nlohmann::json json = plan.to_json();
  CHECK(json["max_batch"] == 500);
  CHECK(json["bytes_per_system"] == plan.bytes_per_system);
  CHECK(json["available_from"] == "--memory-gib");

  const BatchPlan tight = plan_batch(*backend, config, probe.fixed_bytes + 10 * probe.bytes_per_system);
  CHECK_FALSE(tight.fits);
  CHECK(tight.max_batch < 100);
  test::check_contains(test::thrown_message<ConfigError>([&] { check_batch_fits(tight); }),
                       {"does not fit", "training.batch_size", "eval_batch_size", "100 systems",
                        std::to_string(tight.bytes_per_system) + " bytes per system",
                        "largest batch that fits is " + std::to_string(tight.max_batch), "eqprop plan"});
  // Without a figure, the plan uses what the device reports free.
  const BatchPlan device = plan_batch(*backend, config);
  CHECK_FALSE(device.available_given);
  CHECK(device.available_bytes > 0);
  CHECK(device.available_bytes <= static_cast<std::int64_t>(backend->device_memory().total_bytes));
}

}  // namespace eqprop
