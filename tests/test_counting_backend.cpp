// The counting decorator (kernels/counting_backend.h): it forwards results
// unchanged, counts by the CUDA backend's rules, and pins what one training step
// of the default dense network, the oscillator recipe (both relaxation paths) and
// the small conv recipe asks of a device.
#include <doctest/doctest.h>
#include <omp.h>

#include <random>

#include "engine/benchmark.h"
#include "engine/trainer.h"
#include "kernels/counting_backend.h"
#include "kernels/device_buffer.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

Config recipe(const std::string& name) {
  const std::string path = std::string(EQPROP_SOURCE_DIR) + "/configs/" + name;
  return parse_config(read_config_file(path), path);
}

// The CPU backend runs the calls inside parallel_over_rows once per core slice; on
// one thread it runs them once, as a GPU does. Restores the thread count on exit.
class OneOpenMpThread {
 public:
  OneOpenMpThread() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneOpenMpThread() { omp_set_num_threads(previous_); }
  OneOpenMpThread(const OneOpenMpThread&) = delete;
  OneOpenMpThread& operator=(const OneOpenMpThread&) = delete;

 private:
  int previous_;
};

// Two training steps on a random batch; returns every parameter tensor on the host.
std::vector<std::vector<float>> parameters_after_steps(Backend& backend, const Config& config) {
  Trainer trainer(backend, config);
  const int batch = config.training.batch_size;
  std::mt19937 rng(5);
  DeviceBuffer<float> x(backend, std::size_t(batch) * trainer.model().input_size());
  DeviceBuffer<float> target(backend, std::size_t(batch) * trainer.model().classes());
  x.copy_from_host(test::random_vector(rng, x.size(), 0.0f, 1.0f));
  target.copy_from_host(test::random_one_hot(rng, batch, trainer.model().classes()));
  for (std::uint64_t step = 0; step < 2; ++step) trainer.train_step(x.data(), target.data(), batch, step, 1.0f);
  std::vector<std::vector<float>> result;
  for (const auto* tensors : {&trainer.model().parameters().weights, &trainer.model().parameters().biases})
    for (const DeviceBuffer<float>& tensor : *tensors) result.push_back(tensor.to_host());
  return result;
}

}  // namespace

TEST_CASE("counting backend: counts each call by the CUDA backend's rules") {
  auto cpu = make_backend("cpu");
  CountingBackend counting(*cpu);
  DeviceBuffer<float> a(counting, 6), b(counting, 6), c(counting, 4);
  std::vector<float> host(6, 1.0f);
  const BackendCounts start = counting.counts();
  CHECK(start.device_allocations == 3);

  a.copy_from_host(host);                                        // a synchronous upload: a host wait
  counting.upload(0, b.data(), host.data(), 6 * sizeof(float));  // asynchronous: no wait
  counting.wait_uploads();                                       // a wait
  counting.copy_to_host(host.data(), a.data(), 0);               // nothing to copy: not counted
  counting.run(AxpbyOp{a.data(), b.data(), a.data(), 1.0f, 1.0f}, 6);
  counting.run(AxpbyOp{a.data(), b.data(), a.data(), 1.0f, 1.0f}, 0);  // no work: no launch
  // (2, 2) = (2, 3) (3, 2): 2 m n k = 24 FLOPs; reads 6 + 6, writes 4 floats.
  counting.gemm(Transpose::no, Transpose::no, 2, 2, 3, 1.0f, a.data(), 3, b.data(), 2, 0.0f, c.data(), 2);
  counting.copy_on_device(b.data(), a.data(), 6 * sizeof(float));
  c.zero();
  counting.copy_to_host(host.data(), a.data(), 6 * sizeof(float));
  CHECK(counting.count_nonfinite(a.data(), 6) == 0);
  counting.synchronize();

  const BackendCounts step = counting.counts() - start;
  CHECK(host == std::vector<float>(6, 2.0f));  // forwarded: 1 + 1 on the device, copied back
  CHECK(step.kernel_launches == 1);
  CHECK(step.launches_by_op == std::map<std::string, std::int64_t>{{"AxpbyOp", 1}});
  CHECK(step.op_bytes_estimate == 6 * 3 * 4);
  CHECK(step.blas_calls == 1);
  CHECK(step.gemm_flops == 24);
  CHECK(step.gemm_bytes_estimate == (6 + 6 + 4) * 4);
  CHECK(step.memsets == 1);
  CHECK(step.bytes_zeroed == 16);
  CHECK(step.host_syncs == 5);
  CHECK(step.syncs_by_call == std::map<std::string, std::int64_t>{{"copy_to_device", 1},
                                                                  {"wait_uploads", 1},
                                                                  {"copy_to_host", 1},
                                                                  {"count_nonfinite", 1},
                                                                  {"synchronize", 1}});
  CHECK(step.host_to_device_copies == 2);
  CHECK(step.bytes_host_to_device == 48);
  CHECK(step.device_to_host_copies == 1);
  CHECK(step.bytes_device_to_host == 24);
  CHECK(step.device_to_device_copies == 1);
  CHECK(step.bytes_copied() == 48 + 24 + 24);
  CHECK(step.bytes_moved_estimate() == 72 + 64 + 2 * 24 + 16);
  CHECK(step.device_allocations == 0);

  counting.reset_counts();
  CHECK(counting.counts().host_syncs == 0);
  CHECK(counting.counts().launches_by_op.empty());
}

TEST_CASE("counting backend: a training step through it gives the same parameters bit for bit") {
  // Several threads: the decorator is also called from inside parallel_over_rows.
  Config config = recipe("fashion_mnist.json");
  config.training.batch_size = 32;
  auto plain = make_backend("cpu");
  auto wrapped = make_backend("cpu");
  CountingBackend counting(*wrapped);
  const auto expected = parameters_after_steps(*plain, config);
  const auto actual = parameters_after_steps(counting, config);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    test::check_bit_exact("parameter tensor " + std::to_string(i), actual[i], expected[i]);
  CHECK(counting.counts().kernel_launches > 0);
  CHECK(counting.counts().row_slices > 0);
}

// The counts of one training step as they are at the time of writing: the launch
// and host-synchronization budget of a step on a GPU. They are pinned exactly so a
// change to them is a deliberate one: a change that alters them (fusing ops,
// removing a host wait) updates these numbers and says so in its commit.
TEST_CASE("counting backend: the launches, BLAS calls and host waits of one training step are pinned") {
  OneOpenMpThread one_thread;
  auto cpu = make_backend("cpu");
  BenchmarkOptions options;
  options.warmup = 1;  // the counted step is the second: nothing left to set up
  options.repeats = 1;

  SUBCASE("dense default: 784-500-10, batch 128, T1 = 30, T2 = 10, symmetric nudging") {
    const nlohmann::json bench = run_benchmark(*cpu, recipe("fashion_mnist.json"), options);
    INFO(bench["step_counts"].dump());
    CHECK(bench["batch"] == 128);
    CHECK(bench["launches"] == 110);
    CHECK(bench["blas_calls"] == 105);
    // The loss, accuracy and free energies stay on the device (read by
    // Trainer::flush_metrics every few steps): a step never waits for the device.
    CHECK(bench["host_syncs"] == 0);
    CHECK(bench["step_counts"]["host_syncs_by_call"] == nlohmann::json::object());
    CHECK(bench["step_counts"]["launches_by_op"] == nlohmann::json{{"LayerStepOp", 100},
                                                                   {"SgdMomentumOp", 4},
                                                                   {"ColumnSumOp", 2},
                                                                   {"RowEnergyOp", 2},
                                                                   {"AxpbyOp", 1},
                                                                   {"RowMetricsOp", 1}});
    CHECK(bench["step_counts"]["memsets"] == 2);
    CHECK(bench["step_counts"]["device_to_device_copies"] == 4);
    CHECK(bench["step_counts"]["device_allocations"] == 0);
    CHECK(bench["step_counts"]["row_slices"] == 3);  // one per phase on one thread, as on a GPU
  }
  SUBCASE("oscillator recipe: 784-500-10, batch 128, T1 = 40, T2 = 10, the fused and the GEMM relaxation") {
    // GEMM path: per step four GEMMs (cos and sin, from below and from above) and a
    // step op per layer, 60 steps; fused: per phase the feedback's J^T and one
    // FusedOscillatorBlock, and no trig pass before it (the body takes its own).
    Config config = recipe("fashion_mnist_oscillator.json");
    config.model.relaxation_path = RelaxationPath::gemm;
    const nlohmann::json gemm = run_benchmark(*cpu, config, options);
    INFO(gemm["step_counts"].dump());
    CHECK(gemm["batch"] == 128);
    CHECK(gemm["launches"] == 145);
    CHECK(gemm["blas_calls"] == 250);
    CHECK(gemm["host_syncs"] == 0);
    CHECK(gemm["step_counts"]["launches_by_op"] == nlohmann::json{{"OscillatorStepOp", 120},
                                                                  {"OscillatorTrigOp", 14},
                                                                  {"SgdMomentumOp", 4},
                                                                  {"AxpbyOp", 2},
                                                                  {"ColumnSumOp", 2},
                                                                  {"OscillatorRowEnergyOp", 2},
                                                                  {"RowMetricsOp", 1}});
    config.model.relaxation_path = RelaxationPath::fused;
    const nlohmann::json fused = run_benchmark(*cpu, config, options);
    INFO(fused["step_counts"].dump());
    CHECK(fused["launches"] == 25);
    CHECK(fused["blas_calls"] == 10);
    CHECK(fused["host_syncs"] == 0);
    CHECK(fused["step_counts"]["launches_by_op"] == nlohmann::json{{"OscillatorTrigOp", 8},
                                                                   {"SgdMomentumOp", 4},
                                                                   {"FusedOscillatorBlock", 3},
                                                                   {"TransposeOp", 3},
                                                                   {"AxpbyOp", 2},
                                                                   {"ColumnSumOp", 2},
                                                                   {"OscillatorRowEnergyOp", 2},
                                                                   {"RowMetricsOp", 1}});
    CHECK(fused["step_counts"]["device_allocations"] == 0);
  }
  SUBCASE("small conv recipe: configs/fashion_mnist_conv.json, batch 64") {
    const nlohmann::json bench = run_benchmark(*cpu, recipe("fashion_mnist_conv.json"), options);
    INFO(bench["step_counts"].dump());
    CHECK(bench["batch"] == 64);
    CHECK(bench["launches"] == 233);
    CHECK(bench["blas_calls"] == 102);
    CHECK(bench["host_syncs"] == 0);
    CHECK(bench["step_counts"]["host_syncs_by_call"] == nlohmann::json::object());
    CHECK(bench["step_counts"]["launches_by_op"] == nlohmann::json{{"LayerStepOp", 64},
                                                                   {"Im2colOp", 37},
                                                                   {"MaxPoolOp", 36},
                                                                   {"MaxUnpoolOp", 35},
                                                                   {"Col2imOp", 32},
                                                                   {"SoftmaxResidualOp", 14},
                                                                   {"SgdMomentumOp", 6},
                                                                   {"ColumnSumOp", 3},
                                                                   {"PlaneRelayoutOp", 2},
                                                                   {"RowEnergyOp", 2},
                                                                   {"AxpbyOp", 1},
                                                                   {"RowMetricsOp", 1}});
    CHECK(bench["step_counts"]["memsets"] == 4);
    CHECK(bench["step_counts"]["device_to_device_copies"] == 5);
    CHECK(bench["step_counts"]["device_allocations"] == 0);
  }
}

}  // namespace eqprop

namespace eqprop {

// The metrics stay on the device through the steps and are read in bulk: the
// totals are those of reading every step at once, summed step by step.
TEST_CASE("trainer: training steps leave their metrics on the device until flush_metrics reads them") {
  auto cpu = make_backend("cpu");
  const Config config = parse_config(
      nlohmann::json{{"model", {{"layers", {16, 12, 4}}}}, {"training", {{"batch_size", 8}}}}, "test");
  const int batch = 8, steps = Trainer::kMetricsBatches + 4;  // one read of a full queue inside
  CountingBackend counting(*cpu);
  Trainer queued(counting, config), each(*cpu, config);
  std::mt19937 rng(9);
  DeviceBuffer<float> x(*cpu, std::size_t(batch) * 16), target(*cpu, std::size_t(batch) * 4);
  x.copy_from_host(test::random_vector(rng, x.size(), 0.0f, 1.0f));
  target.copy_from_host(test::random_one_hot(rng, batch, 4));
  BatchResult expected;
  for (int step = 0; step < steps; ++step) {
    const BackendCounts before = counting.counts();
    queued.train_step(x.data(), target.data(), batch, step, 1.0f);
    const BackendCounts done = counting.counts() - before;
    CHECK(done.host_syncs == (step == Trainer::kMetricsBatches ? 3 : 0));
    each.train_step(x.data(), target.data(), batch, step, 1.0f);
    expected.add(each.flush_metrics());
  }
  CHECK(queued.steps_taken() == steps);
  const BackendCounts before = counting.counts();
  const BatchResult total = queued.flush_metrics();
  CHECK((counting.counts() - before).host_syncs == 3);
  CHECK(total.batches == steps);
  CHECK(total.size == steps * batch);
  CHECK(total.loss_sum == expected.loss_sum);
  CHECK(total.correct_sum == expected.correct_sum);
  CHECK(total.free_steps == expected.free_steps);
  CHECK(total.free_energies == expected.free_energies);
  CHECK(queued.flush_metrics().batches == 0);  // nothing left
}

}  // namespace eqprop
