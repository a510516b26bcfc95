// The GEMM precision option and the memory counter on the CUDA backend: tf32 and
// bf16 (cublasGemmEx with the FAST_TF32 / FAST_16BF compute types) within the same
// rounding bound as the CPU emulation (tests/gemm_error.h); fp32 unchanged by the
// option; allocations counted; the batch plan exactly linear on the GPU too.
// Skips with a message where no GPU is visible.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "engine/batch_planner.h"
#include "kernels/backend.h"
#include "kernels/cuda_backend.h"
#include "kernels/device_buffer.h"
#include "tests/gemm_error.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

}  // namespace

TEST_CASE("cuda gemm precision: tf32 and bf16 within the rounding bound, fp32 unchanged") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cuda = make_backend("cuda");
  std::mt19937 rng(17);
  for (GemmPrecision precision : {GemmPrecision::tf32, GemmPrecision::bf16})
    for (const int k : {256, 1152})
      for (const bool ta : {false, true}) {
        const test::GemmError error = test::measure_gemm_error(*cuda, precision, ta, !ta, 64, 96, k, rng);
        const std::string name = gemm_precision_name(precision);
        CAPTURE(name);
        CAPTURE(k);
        CHECK(error.worst_of_bound <= 1.0);
        CHECK(error.typical_in_u < 2.0);
        // Not checked from below: the FAST compute types allow, not force, the
        // reduced inputs, and cuBLAS may pick an FP32 kernel for some shapes (an
        // rms of ~1e-5 u then says so).
        MESSAGE(name << " k=" << k << ": worst entry " << error.worst_of_bound * 100 << "% of the bound, rms "
                     << error.typical_in_u << " u x rss(products)");
      }
  const int m = 33, n = 41, k = 300;
  const test::Matrix a = test::random_matrix(rng, m, k, 0), b = test::random_matrix(rng, k, n, 0);
  const auto before = test::backend_gemm(*cuda, GemmPrecision::fp32, false, false, m, n, k, a, b);
  (void)test::backend_gemm(*cuda, GemmPrecision::bf16, false, false, m, n, k, a, b);
  test::check_bit_exact("cuda fp32 gemm after a bf16 gemm",
                        test::backend_gemm(*cuda, GemmPrecision::fp32, false, false, m, n, k, a, b), before);
}

TEST_CASE("cuda memory: allocations are counted, the plan is linear in the batch") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cuda = make_backend("cuda");
  const std::size_t start = cuda->memory_usage().current_bytes;
  {
    DeviceBuffer<float> buffer(*cuda, 1 << 20);
    CHECK(cuda->memory_usage().current_bytes == start + (4u << 20));
  }
  CHECK(cuda->memory_usage().current_bytes == start);
  const DeviceMemory memory = cuda->device_memory();
  CHECK(memory.total_bytes > 0);
  CHECK(memory.free_bytes <= memory.total_bytes);
  const Config config = parse_config(nlohmann::json{{"model", {{"layers", {64, 40, 10}}}}}, "test");
  const BatchPlan plan = plan_batch(*cuda, config);
  CHECK(measure_trainer_bytes(*cuda, config, 9) == plan.fixed_bytes + 9 * plan.bytes_per_system);
  CHECK(plan.fits);
}

}  // namespace eqprop
