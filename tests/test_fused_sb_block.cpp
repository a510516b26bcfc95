// The fused bSB / dSB block kernel (kernels/fused_sb_block.h) over the CPU execution
// context (kernels/execution_context.h): bit for bit equal to its naive reference
// for every block size, thread order and tile width, through the backend too; and a
// body with one barrier left out is caught by the same comparison.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/execution_context.h"
#include "kernels/fused_sb_block.h"
#include "tests/block_shapes.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

constexpr int kUnits = 37;  // not a multiple of any tile or block size below
constexpr int kReplicas = 5;

// A symmetric J (n, n) with non-integer entries, so that a different summation
// order would change the bits, and a random state as SbInitOp draws it.
struct Problem {
  std::vector<float> couplings, x, y;
};

Problem random_problem(std::uint32_t seed) {
  std::mt19937 rng(seed);
  Problem problem;
  problem.couplings = test::random_vector(rng, std::size_t(kUnits) * kUnits, -1.0f, 1.0f);
  for (int i = 0; i < kUnits; ++i)
    for (int j = 0; j < i; ++j)
      problem.couplings[std::size_t(i) * kUnits + j] = problem.couplings[std::size_t(j) * kUnits + i];
  problem.x = test::random_vector(rng, std::size_t(kReplicas) * kUnits, -0.1f, 0.1f);
  problem.y = test::random_vector(rng, std::size_t(kReplicas) * kUnits, -0.1f, 0.1f);
  return problem;
}

// Host arrays a body works on in place: x, y, signs (replicas, units).
struct Run {
  std::vector<float> x, y, signs;
};

// Steps 3..43 of a run of 60: a chunk in the middle of the pump's ramp.
FusedSbBlock make_body(const Problem& problem, Run& run, bool discrete) {
  run.x = problem.x;
  run.y = problem.y;
  run.signs.assign(problem.x.size(), 0.0f);
  // c0 large enough that positions reach the walls within the chunk.
  return FusedSbBlock{problem.couplings.data(), run.x.data(), run.y.data(), run.signs.data(),
                      kUnits, 3, 43, 60, /*a0*/ 1.0f, /*c0*/ 0.4f, /*dt*/ 0.5f, discrete};
}

Run reference_run(const Problem& problem, bool discrete) {
  Run run;
  fused_sb_reference(make_body(problem, run, discrete), kReplicas);
  return run;
}

template <int TileWidth, class Body = FusedSbBlock>
Run context_run(const Problem& problem, bool discrete, int block_size, ThreadOrder order) {
  Run run;
  const Body body{make_body(problem, run, discrete)};
  run_blocks_on_cpu<TileWidth>(body, kReplicas, block_size, order);
  return run;
}

bool same_bits(const Run& a, const Run& b) {
  auto same = [](const std::vector<float>& u, const std::vector<float>& v) {
    for (std::size_t i = 0; i < u.size(); ++i)
      if (test::bits_of(u[i]) != test::bits_of(v[i])) return false;
    return u.size() == v.size();
  };
  return same(a.x, b.x) && same(a.y, b.y) && same(a.signs, b.signs);
}

void check_run(const std::string& what, const Run& actual, const Run& expected) {
  test::check_bit_exact(what + " x", actual.x, expected.x, " (a missing barrier or a changed summation order?)");
  test::check_bit_exact(what + " y", actual.y, expected.y);
  test::check_bit_exact(what + " signs", actual.signs, expected.signs);
}

using test::kBlockSizes;
using test::kOrders;
using test::order_name;

template <int TileWidth>
void check_every_block_size_and_order(const Problem& problem, bool discrete, const Run& expected) {
  for (const int block_size : kBlockSizes)
    for (const ThreadOrder order : kOrders)
      check_run(std::string(discrete ? "dSB" : "bSB") + ", tile " + std::to_string(TileWidth) + ", " +
                    std::to_string(block_size) + " threads, " + order_name(order),
                context_run<TileWidth>(problem, discrete, block_size, order), expected);
}

TEST_CASE("fused SB block: the CPU context equals the naive reference bit for bit, any block size, order, tile") {
  const Problem problem = random_problem(61);
  for (const bool discrete : {false, true}) {
    const Run expected = reference_run(problem, discrete);
    // The chunk moved the state: the comparison is not between two untouched copies.
    CHECK(expected.x != problem.x);
    check_every_block_size_and_order<1>(problem, discrete, expected);  // the GPU's mapping
    check_every_block_size_and_order<16>(problem, discrete, expected);
    check_every_block_size_and_order<kCpuTileWidth>(problem, discrete, expected);  // the CPU backend's
  }
}

TEST_CASE("fused SB block: Backend::run_blocks on the CPU equals the reference") {
  auto backend = make_backend("cpu");
  const Problem problem = random_problem(62);
  for (const bool discrete : {false, true}) {
    CAPTURE(discrete);
    Run host;
    FusedSbBlock body = make_body(problem, host, discrete);
    DeviceBuffer<float> couplings(*backend, problem.couplings.size()), x(*backend, host.x.size()),
        y(*backend, host.y.size()), signs(*backend, host.signs.size());
    couplings.copy_from_host(problem.couplings);
    x.copy_from_host(host.x);
    y.copy_from_host(host.y);
    signs.zero();
    body.couplings = couplings.data();
    body.x = x.data();
    body.y = y.data();
    body.signs = signs.data();
    backend->run_blocks(body, kReplicas, FusedSbLaunchPolicy::threads_per_block(kUnits));
    check_run("cpu backend", Run{x.to_host(), y.to_host(), signs.to_host()}, reference_run(problem, discrete));
  }
}

// FusedSbBlock with the barrier between the field and the step left out: a thread
// steps its units while other threads of the phase may still read them for their
// fields. The same phases, so only the barrier differs.
struct FusedSbBlockMissingBarrier {
  FusedSbBlock body;
  std::size_t shared_bytes() const { return body.shared_bytes(); }
  template <class Context>
  void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const FusedSbSharedArrays shared = body.shared_arrays(ctx.shared_memory());
    const int replica = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { body.load<tile>(shared, replica, thread, threads); });
    for (std::int32_t k = body.first_step; k < body.last_step; ++k) {
      const float detuning = sb_detuning(body.a0, k, body.steps);
      ctx.for_each_thread([&](int thread) {
        body.field_phase<tile>(shared, thread, threads);
        body.step_phase<tile>(shared, detuning, thread, threads);  // no barrier before it
      });
    }
    ctx.for_each_thread([&](int thread) { body.store<tile>(shared, replica, thread, threads); });
  }
};

TEST_CASE("fused SB block: a body with a barrier left out fails the comparison on the CPU context") {
  // bSB: its field reads x, which every step changes (dSB's sign(x) changes only
  // where a spin flips, so a race there can go unseen for a while).
  const Problem problem = random_problem(63);
  const Run expected = reference_run(problem, false);
  // One thread runs the phases in program order: nothing to race with.
  check_run("missing barrier, 1 thread",
            context_run<1, FusedSbBlockMissingBarrier>(problem, false, 1, ThreadOrder::forward), expected);
  for (const int block_size : {3, 32, 128})
    for (const ThreadOrder order : kOrders) {
      CAPTURE(block_size);
      CAPTURE(order_name(order));
      CHECK_FALSE(same_bits(context_run<1, FusedSbBlockMissingBarrier>(problem, false, block_size, order), expected));
    }
}

}  // namespace
}  // namespace eqprop
