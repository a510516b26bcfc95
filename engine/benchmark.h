// Times EP training steps on synthetic data of a config's shapes, against the
// backend's measured single-precision GEMM rate (its practical peak).
#pragma once

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "kernels/backend.h"

namespace eqprop {

struct BenchmarkOptions {
  int warmup = 3;
  int repeats = 20;
};

// The build this binary came from: git commit (at configure time, "unknown"
// outside a checkout), compiler, CMAKE_BUILD_TYPE, whether CUDA was built and for
// which architectures.
nlohmann::json build_info_json();

// Best-of-several GFLOP/s of a square sgemm on the backend.
double measured_gemm_gflops(Backend& backend);

// One JSON object: backend, device, batch, ms_per_batch (median), samples_per_s,
// gflops (achieved), peak_gflops (measured sgemm), fraction_of_peak, and the shape;
// what the last timed step asked of the device (kernels/counting_backend.h):
// launches, blas_calls, host_syncs, bytes_copied, bytes_moved_estimate and the
// detail in step_counts; and the build (build_info_json).
nlohmann::json run_benchmark(Backend& backend, const Config& config, const BenchmarkOptions& options);

}  // namespace eqprop
