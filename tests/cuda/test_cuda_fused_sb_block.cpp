// CPU vs CUDA parity of the fused bSB / dSB block kernel (kernels/fused_sb_block.h):
// the same body over GpuBlockContext (one thread per unit, shared memory,
// __syncthreads) and over the CPU context is bit-exact (every field summed over j
// ascending; the CUDA backend is built -fmad=false), for a problem that fits one
// tile per thread and one that makes threads take several units; and the solver's
// fused path gives the same answer on both backends (and is the automatic choice for
// a small problem on a GPU). Skips without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/maxcut_solver.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/fused_sb_block.h"
#include "models/ising_problem.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// Runs steps [5, 85) of 100 of the fused kernel on a backend from the given state;
// returns x, y, signs.
std::vector<std::vector<float>> run_fused(Backend& backend, const std::vector<float>& couplings,
                                          const std::vector<float>& x0, const std::vector<float>& y0, int units,
                                          int replicas, bool discrete) {
  DeviceBuffer<float> j(backend, couplings.size()), x(backend, x0.size()), y(backend, y0.size()),
      signs(backend, x0.size());
  j.copy_from_host(couplings);
  x.copy_from_host(x0);
  y.copy_from_host(y0);
  signs.zero();
  const FusedSbBlock body{j.data(), x.data(), y.data(), signs.data(), units, 5, 85, 100, 1.0f, 0.3f, 0.5f, discrete};
  backend.run_blocks(body, replicas, FusedSbLaunchPolicy::threads_per_block(units));
  return {x.to_host(), y.to_host(), signs.to_host()};
}

TEST_CASE("cuda backend: the fused SB block kernel is bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  std::mt19937 rng(71);
  for (const int units : {37, 300}) {  // 300 > 256 threads: some threads take two units
    const int replicas = 33;
    std::vector<float> couplings = test::random_vector(rng, std::size_t(units) * units, -1.0f, 1.0f);
    for (int i = 0; i < units; ++i)
      for (int k = 0; k < i; ++k) couplings[std::size_t(i) * units + k] = couplings[std::size_t(k) * units + i];
    const std::vector<float> x0 = test::random_vector(rng, std::size_t(replicas) * units, -0.1f, 0.1f);
    const std::vector<float> y0 = test::random_vector(rng, std::size_t(replicas) * units, -0.1f, 0.1f);
    for (const bool discrete : {false, true}) {
      const auto on_cpu = run_fused(*cpu, couplings, x0, y0, units, replicas, discrete);
      const auto on_cuda = run_fused(*cuda, couplings, x0, y0, units, replicas, discrete);
      const char* names[] = {"x", "y", "signs"};
      for (int k = 0; k < 3; ++k)
        test::check_declared_agreement<FusedSbBlock>(
            std::string(discrete ? "dSB" : "bSB") + " n=" + std::to_string(units) + " " + names[k] + " (cuda vs cpu)",
            on_cuda[k], on_cpu[k], 1.0, " (an FMA contraction? build the CUDA backend with -fmad=false)");
    }
  }
}

TEST_CASE("cuda backend: the solver's fused path gives the cpu backend's answer") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  std::mt19937 rng(72);
  std::uniform_int_distribution<int> weight(-2, 2);
  IsingProblem problem;
  problem.spins = 90;
  for (int i = 0; i < problem.spins; ++i)
    for (int k = i + 1; k < problem.spins; ++k)
      if (const int w = weight(rng)) problem.couplings.push_back({i, k, double(w)});
  for (const SolverMethod method : {SolverMethod::bsb, SolverMethod::dsb}) {
    CAPTURE(solver_method_name(method));
    SolverOptions options;
    options.method = method;
    options.path = SolverPath::fused_block;
    options.replicas = 40;
    options.steps = 400;
    options.evaluations = 4;
    const SolverResult on_cpu = solve_ising(*cpu, problem, options);
    const SolverResult on_cuda = solve_ising(*cuda, problem, options);
    CHECK(on_cuda.path == SolverPath::fused_block);
    // The kernel is bit-exact; the evaluation's GEMM sums exact integers here.
    CHECK(on_cuda.final_energies == on_cpu.final_energies);
    CHECK(on_cuda.best_spins == on_cpu.best_spins);
  }
  // A problem this small takes the fused path by itself on a GPU.
  SolverOptions options;
  options.replicas = 8;
  options.steps = 20;
  REQUIRE(problem.spins <= fused_sb_max_spins(*cuda));
  CHECK(solve_ising(*cuda, problem, options).path == SolverPath::fused_block);
}

}  // namespace
}  // namespace eqprop
