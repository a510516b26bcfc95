// The per-system reductions as block bodies (kernels/row_reduction.h,
// RowEnergyBlock, RowMaxChangeBlock) over the CPU execution context: bit for bit
// equal to their naive references for every block size, thread order and tile
// width; the maximum also bit-exact against the serial op the CPU backend keeps;
// Backend::reduce_rows with run()'s meaning; and a body with one barrier left out
// is caught by the same comparison.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/execution_context.h"
#include "kernels/row_energy.h"
#include "kernels/row_max_change.h"
#include "kernels/row_reduction.h"
#include "tests/block_shapes.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::kBlockSizes;
using test::kOrders;
using test::order_name;
constexpr int kRows = 4;
// Fewer units than slots, one slot's worth, and several terms per slot with a
// ragged last stride (not a multiple of any block size or tile).
constexpr std::int32_t kUnitCounts[] = {1, 37, 256, 1000};

std::vector<float> random_vector(std::size_t n, std::uint32_t seed, float low, float high) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> v(n);
  for (float& x : v) x = uniform(generator);
  return v;
}

// The inputs of both reductions for kRows rows of `units`.
struct Rows {
  std::int32_t units;
  std::vector<float> states, other, bias, initial;  // other: drive or previous states
};

Rows random_rows(std::int32_t units, std::uint32_t seed) {
  const std::size_t n = std::size_t(kRows) * units;
  return {units, random_vector(n, seed, 0.0f, 1.0f), random_vector(n, seed + 1, -1.0f, 1.0f),
          random_vector(std::size_t(units), seed + 2, -0.5f, 0.5f), random_vector(kRows, seed + 3, 0.0f, 0.25f)};
}

RowEnergyOp energy_op(const Rows& rows, std::vector<float>& energy, bool accumulate) {
  return {rows.states.data(), rows.other.data(), rows.bias.data(), energy.data(), rows.units, accumulate, 0.5f};
}

RowMaxChangeOp max_change_op(const Rows& rows, std::vector<float>& residual, bool accumulate) {
  RowMaxChangeOp op{};
  op.states = rows.states.data();
  op.previous = rows.other.data();
  op.residual = residual.data();
  op.units = rows.units;
  op.accumulate = accumulate;
  return op;
}

// The naive references: plain loops in the order of row_reduction.h.
std::vector<float> energy_reference(const Rows& rows, bool accumulate) {
  std::vector<float> energy = rows.initial;
  for (int r = 0; r < kRows; ++r) {
    const float* s = rows.states.data() + std::size_t(r) * rows.units;
    const float* d = rows.other.data() + std::size_t(r) * rows.units;
    const float sum = row_reduction_reference(
        rows.units, 0.0f, [&](std::int32_t u) { return row_energy_term(s[u], d[u], rows.bias[u], 0.5f); },
        RowSum{});
    energy[r] = accumulate ? energy[r] + sum : sum;
  }
  return energy;
}

// The maximum's reference is the serial loop of the op itself: a maximum does not
// depend on the order.
std::vector<float> max_change_reference(const Rows& rows, bool accumulate) {
  std::vector<float> residual = rows.initial;
  const RowMaxChangeOp op = max_change_op(rows, residual, accumulate);
  for (int r = 0; r < kRows; ++r) op(r);
  return residual;
}

template <int TileWidth, class Body>
void check_every_block_size_and_order(const std::string& what, const std::vector<float>& initial,
                                      const std::vector<float>& expected, const Body& make) {
  for (const int block_size : kBlockSizes)
    for (const ThreadOrder order : kOrders) {
      std::vector<float> result = initial;
      run_blocks_on_cpu<TileWidth>(make(result), kRows, block_size, order);
      test::check_bit_exact(what + ", tile " + std::to_string(TileWidth) + ", " + std::to_string(block_size) +
                                " threads, " + order_name(order),
                            result, expected, " (a missing barrier or a changed order?)");
    }
}

template <class Body>
void check_all_tiles(const std::string& what, const std::vector<float>& initial, const std::vector<float>& expected,
                     const Body& make) {
  check_every_block_size_and_order<1>(what, initial, expected, make);  // the GPU's mapping
  check_every_block_size_and_order<16>(what, initial, expected, make);
  check_every_block_size_and_order<kCpuTileWidth>(what, initial, expected, make);  // the CPU's
}

TEST_CASE("row reductions: the energy body equals its fixed-order reference bit for bit, any block size, order, tile") {
  for (const std::int32_t units : kUnitCounts)
    for (const bool accumulate : {false, true}) {
      const Rows rows = random_rows(units, 71 + units);
      check_all_tiles("energy, " + std::to_string(units) + " units", rows.initial,
                      energy_reference(rows, accumulate),
                      [&](std::vector<float>& energy) { return RowEnergyBlock{energy_op(rows, energy, accumulate)}; });
    }
}

TEST_CASE("row reductions: the max-change body equals the serial op bit for bit, any block size, order, tile") {
  for (const std::int32_t units : kUnitCounts)
    for (const bool accumulate : {false, true}) {
      const Rows rows = random_rows(units, 81 + units);
      check_all_tiles("max change, " + std::to_string(units) + " units", rows.initial,
                      max_change_reference(rows, accumulate), [&](std::vector<float>& residual) {
                        return RowMaxChangeBlock{max_change_op(rows, residual, accumulate)};
                      });
    }
}

TEST_CASE("row reductions: the max-change body's readout and periodic changes equal the op's") {
  Rows rows = random_rows(300, 91);
  for (float& s : rows.states) s = 6.0f * s - 3.0f;  // phases in [-3, 3): some changes wrap
  const float period = 6.2831853f;
  std::vector<float> expected_residual(kRows), expected_readout(rows.states.size());
  RowMaxChangeOp op = max_change_op(rows, expected_residual, false);
  op.period = period;
  op.readout = expected_readout.data();
  op.readout_first = 5;
  for (int r = 0; r < kRows; ++r) op(r);
  for (const int block_size : kBlockSizes)
    for (const ThreadOrder order : kOrders) {
      std::vector<float> residual(kRows), readout(rows.states.size(), -1.0f);
      RowMaxChangeOp block_op = op;
      block_op.residual = residual.data();
      block_op.readout = readout.data();
      run_blocks_on_cpu<1>(RowMaxChangeBlock{block_op}, kRows, block_size, order);
      test::check_bit_exact("periodic residual", residual, expected_residual);
      test::check_bit_exact("readout", readout, expected_readout);
    }
}

TEST_CASE("row reductions: a NaN change makes the body's residual NaN, like the op's") {
  Rows rows = random_rows(1000, 101);
  rows.states[2 * 1000 + 517] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> residual(kRows);
  run_blocks_on_cpu<1>(RowMaxChangeBlock{max_change_op(rows, residual, false)}, kRows, 32, ThreadOrder::shuffled);
  const std::vector<float> expected = max_change_reference(rows, false);
  CHECK(std::isnan(expected[2]));
  CHECK(std::isnan(residual[2]));
  for (const int r : {0, 1, 3}) CHECK(test::bits_of(residual[r]) == test::bits_of(expected[r]));
}

TEST_CASE("row reductions: the energy's tree sum is a sum (close to the serial op's)") {
  const Rows rows = random_rows(1000, 111);
  std::vector<float> serial = rows.initial;
  const RowEnergyOp op = energy_op(rows, serial, false);
  for (int r = 0; r < kRows; ++r) op(r);
  const std::vector<float> tree = energy_reference(rows, false);
  for (int r = 0; r < kRows; ++r) CHECK(tree[r] == doctest::Approx(serial[r]).epsilon(1e-4));
}

TEST_CASE("row reductions: Backend::reduce_rows on the CPU has run()'s meaning, bit for bit") {
  auto backend = make_backend("cpu");
  const Rows rows = random_rows(1000, 121);
  DeviceBuffer<float> states(*backend, rows.states.size()), other(*backend, rows.other.size()),
      bias(*backend, rows.bias.size()), by_run(*backend, kRows), by_reduce(*backend, kRows);
  states.copy_from_host(rows.states);
  other.copy_from_host(rows.other);
  bias.copy_from_host(rows.bias);
  for (const bool accumulate : {false, true}) {
    by_run.copy_from_host(rows.initial);
    by_reduce.copy_from_host(rows.initial);
    RowEnergyOp energy{states.data(), other.data(), bias.data(), by_run.data(), rows.units, accumulate, 0.5f};
    backend->run(energy, kRows);
    energy.energy = by_reduce.data();
    backend->reduce_rows(energy, kRows);
    test::check_bit_exact("energy", by_reduce.to_host(), by_run.to_host());

    by_run.copy_from_host(rows.initial);
    by_reduce.copy_from_host(rows.initial);
    RowMaxChangeOp change{};
    change.states = states.data();
    change.previous = other.data();
    change.units = rows.units;
    change.accumulate = accumulate;
    change.residual = by_run.data();
    backend->run(change, kRows);
    change.residual = by_reduce.data();
    backend->reduce_rows(change, kRows);
    test::check_bit_exact("max change", by_reduce.to_host(), by_run.to_host());
    // And the body through run_blocks (what the CUDA backend launches) agrees with it.
    change.residual = by_reduce.data();
    by_reduce.copy_from_host(rows.initial);
    backend->run_blocks(RowMaxChangeBlock{change}, kRows, RowReductionLaunchPolicy::threads_per_block(rows.units));
    test::check_bit_exact("max change, run_blocks", by_reduce.to_host(), by_run.to_host());
  }
}

// RowEnergyBlock with the barrier between the fold and the first tree level left
// out: a thread combines slot i + 1 while the thread that folds it may not have
// run yet. The same phases, so only the barrier differs.
struct RowEnergyBlockMissingBarrier {
  RowEnergyBlock body;
  std::size_t shared_bytes() const { return body.shared_bytes(); }
  template <class Context>
  void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const RowReductionPhases phases = body.phases(ctx.shared_memory());
    const int threads = ctx.block_size();
    const RowEnergyOp& op = body.op;
    const std::int64_t row = ctx.block();
    auto term = [&](std::int32_t u) {
      return row_energy_term(op.states[row * op.units + u], op.drive[row * op.units + u], op.bias[u],
                             op.self_coefficient);
    };
    ctx.for_each_thread([&](int thread) {
      phases.fold<tile>(thread, threads, 0.0f, term, RowSum{}, NoTermRun{});
      phases.tree_level<tile>(thread, threads, 1, RowSum{});  // no barrier before it
    });
    for (int stride = 2; stride < phases.slot_count; stride *= 2)
      ctx.for_each_thread([&](int thread) { phases.tree_level<tile>(thread, threads, stride, RowSum{}); });
    ctx.for_each_thread([&](int thread) {
      if (thread == 0) op.energy[row] = phases.slots[0];
    });
  }
};

TEST_CASE("row reductions: a body with a barrier left out fails the comparison on the CPU context") {
  const Rows rows = random_rows(1000, 131);
  const std::vector<float> expected = energy_reference(rows, false);
  auto run = [&](int block_size, ThreadOrder order) {
    std::vector<float> energy = rows.initial;
    run_blocks_on_cpu<1>(RowEnergyBlockMissingBarrier{RowEnergyBlock{energy_op(rows, energy, false)}}, kRows,
                         block_size, order);
    return energy;
  };
  // One thread runs the phases in program order: nothing to race with.
  test::check_bit_exact("missing barrier, 1 thread", run(1, ThreadOrder::forward), expected);
  for (const int block_size : {3, 32, 128})
    for (const ThreadOrder order : kOrders) {
      CAPTURE(block_size);
      CAPTURE(order_name(order));
      const std::vector<float> energy = run(block_size, order);
      bool same = true;
      for (int r = 0; r < kRows; ++r) same = same && test::bits_of(energy[r]) == test::bits_of(expected[r]);
      CHECK_FALSE(same);
    }
}

}  // namespace
}  // namespace eqprop
