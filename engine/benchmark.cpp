#include "engine/benchmark.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "engine/trainer.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"

namespace eqprop {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

double training_step_flops(const Config& config, int batch) {
  const std::vector<int>& n = config.model.layers;
  const bool cross_entropy = config.model.cost == CostKind::cross_entropy;
  const int weight_tensors = static_cast<int>(n.size()) - 1;
  const int state_layers = weight_tensors - (cross_entropy ? 1 : 0);
  const double b = batch;
  auto gemm = [&](int l) { return 2.0 * b * n[l] * n[l + 1]; };  // one pass through W_{l+1}
  double per_step = 0;
  for (int i = 1; i < state_layers; ++i) per_step += 2 * gemm(i);  // drive and feedback
  const int phases_nudged = config.ep.symmetric ? 2 : 1;
  const double readout_nudge = cross_entropy ? 2 * gemm(weight_tensors - 1) : 0;
  double flops = gemm(0);  // the cached input drive
  flops += per_step * (config.dynamics.t_free + phases_nudged * config.dynamics.t_nudge);
  flops += readout_nudge * phases_nudged * config.dynamics.t_nudge;
  // Contrastive update: one GEMM for the input layer, two for the others.
  flops += gemm(0);
  for (int l = 1; l < weight_tensors; ++l) flops += 2 * gemm(l);
  return flops;
}

double measured_gemm_gflops(Backend& backend) {
  const int size = backend.name() == "cuda" ? 4096 : 1024;
  const std::size_t elements = std::size_t(size) * size;
  DeviceBuffer<float> a(backend, elements), b(backend, elements), c(backend, elements);
  for (DeviceBuffer<float>* m : {&a, &b}) backend.run(FillRandomOp{m->data(), 7, RngStream::synthetic_data, 0, 0, Distribution::uniform, 1.0f, 0.0f}, elements);
  c.zero();
  double best = 1e30;
  for (int repeat = 0; repeat < 6; ++repeat) {
    backend.synchronize();
    const auto start = Clock::now();
    backend.gemm(Transpose::no, Transpose::no, size, size, size, 1.0f, a.data(), size, b.data(), size,
                 0.0f, c.data(), size);
    backend.synchronize();
    best = std::min(best, seconds_since(start));
  }
  return 2.0 * size * double(size) * size / best / 1e9;
}

nlohmann::json run_benchmark(Backend& backend, const Config& config, const BenchmarkOptions& options) {
  const int batch = config.training.batch_size;
  const int inputs = config.model.layers.front(), classes = config.model.layers.back();
  Trainer trainer(backend, config, inputs, classes);
  DeviceBuffer<float> x(backend, std::size_t(batch) * inputs);
  backend.run(FillRandomOp{x.data(), config.seed, RngStream::synthetic_data, 0, 0, Distribution::uniform, 1.0f, 0.0f},
              static_cast<std::int64_t>(x.size()));
  std::vector<float> one_hot(std::size_t(batch) * classes, 0.0f);
  for (int i = 0; i < batch; ++i)
    one_hot[std::size_t(i) * classes + random_words(config.seed, RngStream::synthetic_data, i, 1).v[0] % classes] = 1.0f;
  DeviceBuffer<float> target(backend, one_hot.size());
  target.copy_from_host(one_hot);

  std::vector<double> times;
  for (int step = 0; step < options.warmup + options.repeats; ++step) {
    backend.synchronize();
    const auto start = Clock::now();
    trainer.train_step(x.data(), target.data(), batch, static_cast<std::uint64_t>(step), 1.0f);
    backend.synchronize();
    if (step >= options.warmup) times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const double flops = training_step_flops(config, batch);
  const double peak = measured_gemm_gflops(backend);
  const double achieved = flops / median / 1e9;
  return nlohmann::json{{"backend", backend.name()},
                        {"device", backend.device_name()},
                        {"layers", config.model.layers},
                        {"cost", config.resolved["model"]["cost"]},
                        {"integrator", config.resolved["dynamics"]["integrator"]},
                        {"t_free", config.dynamics.t_free},
                        {"t_nudge", config.dynamics.t_nudge},
                        {"nudging", config.resolved["ep"]["nudging"]},
                        {"batch", batch},
                        {"ms_per_batch", median * 1e3},
                        {"ms_per_batch_min", times.front() * 1e3},
                        {"samples_per_s", batch / median},
                        {"gflop_per_batch", flops / 1e9},
                        {"gflops", achieved},
                        {"peak_gflops", peak},
                        {"fraction_of_peak", achieved / peak}};
}

}  // namespace eqprop
