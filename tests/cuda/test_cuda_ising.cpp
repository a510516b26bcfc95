// CPU vs CUDA parity of the Ising solver's kernels and of the whole solver: the
// SB step and the random initial states are bit-exact across backends (plain float
// arithmetic; the CUDA backend is built -fmad=false), and so is a dSB run on a
// problem with integer couplings (its GEMM sums exact integers). Metropolis sweeps
// on integer couplings agree unless expf differs in its last bit between the
// backends exactly where a uniform falls (about 1e-7 per uphill proposal; these
// seeds are fixed, so the test is deterministic). Skips without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "engine/maxcut_solver.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/elementwise_ops.h"
#include "models/ising_problem.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

IsingProblem random_integer_problem(int n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> weight(-2, 2);
  IsingProblem problem;
  problem.spins = n;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j)
      if (const int w = weight(rng)) problem.couplings.push_back({i, j, double(w)});
  return problem;
}

// Runs `submit` on a backend with four (replicas, units) arrays x, y, field, signs
// (x, y, field from the host values, signs zero) and returns them afterwards.
std::vector<std::vector<float>> run_sb(Backend& backend, const std::vector<std::vector<float>>& host, bool init) {
  const std::size_t count = host[0].size();
  std::vector<DeviceBuffer<float>> arrays;
  for (int k = 0; k < 4; ++k) {
    arrays.emplace_back(backend, count);
    if (k < 3) arrays[k].copy_from_host(host[k]);
    else arrays[k].zero();
  }
  if (init) {
    backend.run(SbInitOp{arrays[0].data(), arrays[1].data(), arrays[3].data(), 7, 123, 2, 0.1f},
                static_cast<std::int64_t>(count));
  } else {
    backend.run(SbStepOp{arrays[0].data(), arrays[1].data(), arrays[2].data(), arrays[3].data(), 0.4f, 1.0f, 0.3f, 0.9f, 1001},
                static_cast<std::int64_t>(count));
  }
  std::vector<std::vector<float>> out;
  for (const auto& array : arrays) out.push_back(array.to_host());
  return out;
}

TEST_CASE("cuda backend: SbInitOp and SbStepOp are bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  std::mt19937 rng(51);
  const std::size_t count = 97 * 1001;
  const std::vector<std::vector<float>> host = {test::random_vector(rng, count, -1.2f, 1.2f),
                                                test::random_vector(rng, count, -1.0f, 1.0f),
                                                test::random_vector(rng, count, -4.0f, 4.0f)};
  for (const bool init : {true, false}) {
    const auto on_cpu = run_sb(*cpu, host, init);
    const auto on_cuda = run_sb(*cuda, host, init);
    for (int k = 0; k < 4; ++k)
      test::check_bit_exact(std::string(init ? "SbInitOp" : "SbStepOp") + " array " + std::to_string(k) +
                                " (cuda vs cpu)",
                            on_cuda[k], on_cpu[k], " (an FMA contraction? build the CUDA backend with -fmad=false)");
  }
}

TEST_CASE("cuda backend: RandomSpinsOp and MetropolisSweepOp agree with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  const int n = 150, replicas = 300;
  const IsingProblem problem = random_integer_problem(n, 52);
  const std::vector<float> dense = dense_couplings(problem, n);
  std::vector<std::vector<float>> results;
  for (const char* device : {"cpu", "cuda"}) {
    auto backend = make_backend(device);
    const std::size_t count = std::size_t(replicas) * n;
    DeviceBuffer<float> j(*backend, dense.size()), spins(*backend, count), fields(*backend, count);
    j.copy_from_host(dense);
    backend->run(RandomSpinsOp{spins.data(), 3, 0, 1}, static_cast<std::int64_t>(count));
    backend->gemm(Transpose::no, Transpose::no, replicas, n, n, 1.0f, spins.data(), n, j.data(), n, 0.0f,
                  fields.data(), n);
    for (std::uint64_t sweep = 0; sweep < 30; ++sweep)
      backend->run(MetropolisSweepOp{spins.data(), fields.data(), j.data(), 0.02f * float(sweep + 1), 3, sweep, 1, 0, n},
                   replicas);
    results.push_back(spins.to_host());
  }
  test::check_bit_exact("spins after 30 sweeps (cuda vs cpu)", results[1], results[0]);
}

TEST_CASE("cuda backend: a dSB solve on integer couplings equals the cpu backend's") {
  if (eqprop::test::skip_without_gpu()) return;
  const IsingProblem problem = random_integer_problem(200, 53);
  SolverOptions options;
  options.method = SolverMethod::dsb;
  options.replicas = 64;
  options.steps = 300;
  options.c0 = 0.0625f;  // a power of two: c0 * field is exact on both
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  const SolverResult on_cpu = solve_ising(*cpu, problem, options);
  const SolverResult on_cuda = solve_ising(*cuda, problem, options);
  CHECK(on_cuda.final_energies == on_cpu.final_energies);
  CHECK(on_cuda.best_spins == on_cpu.best_spins);
}

}  // namespace
}  // namespace eqprop
