// The per-system reductions on the GPU (Backend::reduce_rows, kernels/row_reduction.h):
// the CUDA backend runs the block bodies, one block per system. The maximum is
// bit-exact with the CPU backend's serial op; the energy's fixed tree is bit-exact
// with the same body on the CPU context (the CUDA backend is built -fmad=false) and
// the same for every GPU block size; it differs from the CPU backend's serial sum
// by rounding only. Skips without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/execution_context.h"
#include "kernels/row_energy.h"
#include "kernels/row_max_change.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

std::vector<float> uniform_vector(std::size_t n, std::uint32_t seed, float low, float high) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> v(n);
  for (float& x : v) x = uniform(generator);
  return v;
}

TEST_CASE("cuda backend: reduce_rows runs the row-reduction bodies, deterministic for every block size") {
  if (test::skip_without_gpu()) return;
  const auto cpu = make_backend("cpu");
  const auto cuda = make_backend("cuda");
  constexpr int kRows = 64;
  for (const std::int32_t units : {1, 37, 256, 1000, 32768}) {
    CAPTURE(units);
    const std::size_t n = std::size_t(kRows) * units;
    const std::vector<float> states = uniform_vector(n, 7, 0.0f, 1.0f), other = uniform_vector(n, 8, -1.0f, 1.0f),
                             bias = uniform_vector(std::size_t(units), 9, -0.5f, 0.5f);
    DeviceBuffer<float> s(*cuda, n), o(*cuda, n), b(*cuda, bias.size()), result(*cuda, kRows);
    s.copy_from_host(states);
    o.copy_from_host(other);
    b.copy_from_host(bias);

    // The energy: the body on the CPU context is the reference.
    std::vector<float> expected(kRows);
    run_blocks_on_cpu(RowEnergyBlock{RowEnergyOp{states.data(), other.data(), bias.data(), expected.data(), units,
                                                 false, 0.5f}},
                      kRows, 1);
    const RowEnergyOp energy{s.data(), o.data(), b.data(), result.data(), units, false, 0.5f};
    cuda->reduce_rows(energy, kRows);
    test::check_bit_exact("energy, reduce_rows", result.to_host(), expected);
    for (const int threads : {1, 32, 96, 256, 1024}) {
      result.zero();
      cuda->run_blocks(RowEnergyBlock{energy}, kRows, threads);
      test::check_bit_exact("energy, " + std::to_string(threads) + " threads", result.to_host(), expected);
    }

    // The maximum: the CPU backend's serial op is the reference.
    DeviceBuffer<float> cs(*cpu, n), co(*cpu, n), cpu_result(*cpu, kRows);
    cs.copy_from_host(states);
    co.copy_from_host(other);
    RowMaxChangeOp change{};
    change.states = cs.data();
    change.previous = co.data();
    change.residual = cpu_result.data();
    change.units = units;
    cpu->reduce_rows(change, kRows);
    change.states = s.data();
    change.previous = o.data();
    change.residual = result.data();
    cuda->reduce_rows(change, kRows);
    test::check_bit_exact("max change", result.to_host(), cpu_result.to_host());
  }
}

}  // namespace
}  // namespace eqprop
