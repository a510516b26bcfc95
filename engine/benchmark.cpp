#include "engine/benchmark.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "eqprop_build_info.h"
#include "engine/distributed.h"
#include "engine/precision_summary.h"
#include "engine/trainer.h"
#include "kernels/counting_backend.h"
#include "kernels/dnnl_isa.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"
#include "models/model_registry.h"

namespace eqprop {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The detail of one training step's counts (kernels/counting_backend.h).
nlohmann::json step_counts_json(const BackendCounts& counts) {
  return {{"kernel_launches", counts.kernel_launches},
          {"blas_calls", counts.blas_calls},
          {"memsets", counts.memsets},
          {"host_syncs", counts.host_syncs},
          {"host_syncs_by_call", counts.syncs_by_call},
          {"launches_by_op", counts.launches_by_op},
          {"host_to_device_copies", counts.host_to_device_copies},
          {"device_to_host_copies", counts.device_to_host_copies},
          {"device_to_device_copies", counts.device_to_device_copies},
          {"bytes_host_to_device", counts.bytes_host_to_device},
          {"bytes_device_to_host", counts.bytes_device_to_host},
          {"bytes_device_to_device", counts.bytes_device_to_device},
          {"bytes_zeroed", counts.bytes_zeroed},
          {"gemm_flops", counts.gemm_flops},
          {"gemm_bytes_estimate", counts.gemm_bytes_estimate},
          {"op_bytes_estimate", counts.op_bytes_estimate},
          {"device_allocations", counts.device_allocations},
          {"device_frees", counts.device_frees},
          {"row_slices", counts.row_slices}};
}

}  // namespace

nlohmann::json build_info_json() {
#if defined(EQPROP_HAVE_CUDA)
  constexpr bool cuda = true;
#else
  constexpr bool cuda = false;
#endif
  return {{"commit", EQPROP_GIT_COMMIT},
          {"version", EQPROP_VERSION},
          {"compiler", EQPROP_CXX_COMPILER},
          {"build_type", EQPROP_BUILD_TYPE},
          {"cuda", cuda},
          {"cuda_compiler", EQPROP_CUDA_COMPILER},
          {"cuda_architectures", cuda ? EQPROP_CUDA_ARCHITECTURES : ""},
          {"mpi", Distributed::built_with_mpi()},
          {"nccl", Distributed::built_with_nccl()},
          {"onednn", built_with_dnnl()}};
}

double measured_gemm_gflops(Backend& backend) {
  const int size = backend.traits().is_device ? 4096 : 1024;  // enough work to fill the device
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
  // The trainer runs on a counting decorator (results unchanged) so that the JSON
  // can say what one step asks of the device; the benchmark's own waits go to the
  // wrapped backend and are not counted.
  CountingBackend counting(backend);
  Trainer trainer(counting, config);
  const int inputs = trainer.model().input_size(), classes = trainer.model().classes();
  DeviceBuffer<float> x(backend, std::size_t(batch) * inputs);
  backend.run(FillRandomOp{x.data(), config.seed, RngStream::synthetic_data, 0, 0, Distribution::uniform, 1.0f, 0.0f},
              static_cast<std::int64_t>(x.size()));
  std::vector<float> one_hot(std::size_t(batch) * classes, 0.0f);
  for (int i = 0; i < batch; ++i)
    one_hot[std::size_t(i) * classes + random_words(config.seed, RngStream::synthetic_data, i, 1).v[0] % classes] = 1.0f;
  DeviceBuffer<float> target(backend, one_hot.size());
  target.copy_from_host(one_hot);

  std::vector<double> times;
  BackendCounts step_counts;  // of the last timed step
  for (int step = 0; step < options.warmup + options.repeats; ++step) {
    backend.synchronize();
    const BackendCounts before = counting.counts();
    const auto start = Clock::now();
    trainer.train_step(x.data(), target.data(), batch, static_cast<std::uint64_t>(step), 1.0f);
    backend.synchronize();
    if (step >= options.warmup) times.push_back(seconds_since(start));
    step_counts = counting.counts() - before;
    trainer.flush_metrics();  // the metrics' read, outside the step as in train_epoch
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const double flops = trainer.model().training_step_flops(batch, config.dynamics.t_free, config.dynamics.t_nudge,
                                                           config.ep.symmetric ? 2 : 1);
  const double peak = measured_gemm_gflops(backend);
  const std::string library = backend.convolution_library_description();
  const double achieved = flops / median / 1e9;
  // Models that do not count their FLOPs report null rather than a made-up rate.
  const auto counted = [&](double value) { return flops > 0 ? nlohmann::json(value) : nlohmann::json(nullptr); };
  nlohmann::json result{{"backend", backend.name()},
                        {"device", backend.device_name()},
                        // Which library ran the convolutions, and on the CPU the ISA its
                        // kernels use (AMX or AVX-512 bf16 sets the bf16 ceiling); null where none.
                        {"convolution_library", library.empty() ? nlohmann::json(nullptr) : nlohmann::json(library)},
                        // Whether gemm_precision ran on the device's own instructions or
                        // emulated (slower than fp32), in words and as a flag.
                        {"precision", gemm_precision_summary(backend, config.training.gemm_precision)},
                        {"precision_native", backend.native_gemm_precision(config.training.gemm_precision)},
                        {"model", config.model.kind},
                        {"layers", config.model.layers},
                        {"cost", config.resolved["model"]["cost"]},
                        {"integrator", config.resolved["dynamics"]["integrator"]},
                        {"t_free", config.dynamics.t_free},
                        {"t_nudge", config.dynamics.t_nudge},
                        {"nudging", config.resolved["ep"]["nudging"]},
                        {"batch", batch},
                        // Whether the timed steps were replays of a recorded graph
                        // (training.cuda_graphs): their counts are then the upload's alone.
                        {"cuda_graphs", trainer.captured_step().graphs() > 0},
                        {"ms_per_batch", median * 1e3},
                        // The CPU team sizes the steps ran at (engine/thread_team.h); null on a GPU.
                        {"thread_team", trainer.thread_team().to_json()},
                        {"ms_per_batch_min", times.front() * 1e3},
                        {"samples_per_s", batch / median},
                        {"gflop_per_batch", counted(flops / 1e9)},
                        {"gflops", counted(achieved)},
                        {"peak_gflops", peak},
                        {"fraction_of_peak", counted(achieved / peak)},
                        {"launches", step_counts.kernel_launches},
                        {"blas_calls", step_counts.blas_calls},
                        {"host_syncs", step_counts.host_syncs},
                        {"bytes_copied", step_counts.bytes_copied()},
                        {"bytes_moved_estimate", step_counts.bytes_moved_estimate()},
                        {"step_counts", step_counts_json(step_counts)},
                        {"build", build_info_json()}};
  for (const std::string& section : model_kind(config.model.kind).reported_sections)
    result[section] = config.resolved[section];
  return result;
}

}  // namespace eqprop
