// The fused relaxation of the dense Hopfield network (kernels/fused_relaxation_block.h)
// over the CPU execution context (kernels/execution_context.h): bit for bit equal to
// its naive reference for every block size, thread order, tile width and systems per
// block; within the reduction-order tolerance of the model's GEMM path; a body with
// one barrier left out is caught by the same comparison; and the model's
// training.relaxation_path switch takes it, refuses what it does not cover and
// still learns.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/training_run.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/error.h"
#include "kernels/execution_context.h"
#include "kernels/fused_relaxation_block.h"
#include "models/dense_hopfield.h"
#include "tests/synthetic_data.h"
#include "tests/layer_bit_checks.h"
#include "tests/block_shapes.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

// Three state layers (input 9 -> 13 -> 7 -> 5): the middle one has a drive and a
// feedback, sizes that are multiples of no tile or block size below.
const std::vector<int> kLayers = {9, 13, 7, 5};
constexpr int kBatch = 5;
constexpr int kStates = 3;

// A network's host arrays: weights W_i (layers[i], layers[i+1]), their transposes,
// biases, the input drive x W_1, a one-hot target and a random starting state.
struct Problem {
  std::vector<std::vector<float>> weights, transposed, biases, states;
  std::vector<float> input_drive, target;
};

Problem random_problem(std::uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p;
  for (std::size_t l = 0; l + 1 < kLayers.size(); ++l) {
    const int rows = kLayers[l], columns = kLayers[l + 1];
    p.weights.push_back(test::random_vector(rng, std::size_t(rows) * columns, -0.6f, 0.6f));
    std::vector<float> t(std::size_t(rows) * columns);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < columns; ++c) t[std::size_t(c) * rows + r] = p.weights.back()[std::size_t(r) * columns + c];
    p.transposed.push_back(t);
    p.biases.push_back(test::random_vector(rng, std::size_t(columns), -0.3f, 0.3f));
    p.states.push_back(test::random_vector(rng, std::size_t(kBatch) * columns, 0.0f, 1.0f));
  }
  p.input_drive = test::random_vector(rng, std::size_t(kBatch) * kLayers[1], -1.0f, 1.5f);
  p.target = test::random_one_hot(rng, kBatch, kLayers.back());
  return p;
}

struct Phase {
  Integrator integrator;
  float beta;  // 0: free
  const char* name;
};
constexpr Phase kPhases[] = {{Integrator::fixed_point, 0.0f, "fixed point, free"},
                             {Integrator::fixed_point, -0.5f, "fixed point, nudged -0.5"},
                             {Integrator::gradient_flow, 0.0f, "gradient flow, free"},
                             {Integrator::gradient_flow, 0.7f, "gradient flow, nudged 0.7"}};

// The body over `states` (the caller's copy of the problem's states).
FusedRelaxationBlock make_body(const Problem& p, std::vector<std::vector<float>>& states, const Phase& phase,
                               int systems_per_block, int steps = 17) {
  states = p.states;
  FusedRelaxationBlock body{};
  for (int i = 0; i < kStates; ++i) {
    body.states[i] = states[i].data();
    body.weights[i] = i > 0 ? p.weights[i].data() : nullptr;
    body.weights_transposed[i] = i + 1 < kStates ? p.transposed[i + 1].data() : nullptr;
    body.bias[i] = p.biases[i].data();
    body.units[i] = kLayers[i + 1];
  }
  body.input_drive = p.input_drive.data();
  body.target = phase.beta != 0.0f ? p.target.data() : nullptr;
  body.beta = phase.beta;
  body.dt = 0.3f;
  body.integrator = phase.integrator;
  body.layers = kStates;
  body.batch = kBatch;
  body.systems_per_block = systems_per_block;
  body.steps = steps;
  return body;
}

std::vector<std::vector<float>> reference_run(const Problem& p, const Phase& phase) {
  std::vector<std::vector<float>> states;
  fused_relaxation_reference(make_body(p, states, phase, 1));
  return states;
}

template <int TileWidth, class Body = FusedRelaxationBlock>
std::vector<std::vector<float>> context_run(const Problem& p, const Phase& phase, int systems_per_block,
                                            int block_size, ThreadOrder order) {
  std::vector<std::vector<float>> states;
  const FusedRelaxationBlock inner = make_body(p, states, phase, systems_per_block);
  const Body body{inner};
  run_blocks_on_cpu<TileWidth>(body, inner.blocks(), block_size, order);
  return states;
}

using test::kBlockSizes;
using test::kOrders;
using test::order_name;

template <int TileWidth>
void check_every_shape(const Problem& p, const Phase& phase, const std::vector<std::vector<float>>& expected) {
  for (const int systems : {1, 2, kBatch})  // one system per block, a partial last block, one block
    for (const int block_size : kBlockSizes)
      for (const ThreadOrder order : kOrders)
        test::check_layers_bit_exact(std::string(phase.name) + ", tile " + std::to_string(TileWidth) + ", " +
                         std::to_string(systems) + " systems per block, " + std::to_string(block_size) +
                         " threads, " + order_name(order),
                     context_run<TileWidth>(p, phase, systems, block_size, order), expected);
}

// A DenseHopfield on the CPU backend with the problem's parameters and input drive
// (the input is all zeros but for the drive, which set_input computes: so the
// model's input weights are drawn and the drive taken from the model).
struct ModelRun {
  std::unique_ptr<Backend> backend = make_backend("cpu");
  DenseHopfield model;
  DeviceBuffer<float> x, target;
  explicit ModelRun(const Problem& p, RelaxationPath path)
      : model(*backend, DenseHopfieldShape{kLayers, CostKind::mse}, kBatch, path) {
    for (int l = 0; l < kStates; ++l) {
      model.parameters().weights[l].copy_from_host(p.weights[l]);
      model.parameters().biases[l].copy_from_host(p.biases[l]);
    }
    std::mt19937 rng(5);
    x = DeviceBuffer<float>(*backend, std::size_t(kBatch) * kLayers[0]);
    x.copy_from_host(test::random_vector(rng, std::size_t(kBatch) * kLayers[0], 0.0f, 1.0f));
    target = DeviceBuffer<float>(*backend, p.target.size());
    target.copy_from_host(p.target);
    model.set_input(x.data(), kBatch);
  }
  std::vector<std::vector<float>> relaxed(const Problem& p, const Phase& phase, int steps) {
    NetworkState state = model.make_state();
    for (int i = 0; i < kStates; ++i) state.layers[i].copy_from_host(p.states[i]);
    model.relax(state, target.data(), PhaseSpec{phase.integrator, 0.3f, steps, phase.beta});
    std::vector<std::vector<float>> host;
    for (int i = 0; i < kStates; ++i) host.push_back(state.layers[i].to_host());
    return host;
  }
};

}  // namespace

TEST_CASE("fused relaxation: the CPU context equals the naive reference bit for bit, any block shape, order, tile") {
  const Problem p = random_problem(71);
  for (const Phase& phase : kPhases) {
    const auto expected = reference_run(p, phase);
    CHECK(expected != p.states);  // the phase moved the state
    check_every_shape<1>(p, phase, expected);  // the GPU's mapping
    check_every_shape<4>(p, phase, expected);  // runs cut at row ends
    check_every_shape<kCpuTileWidth>(p, phase, expected);  // the CPU backend's
  }
}

TEST_CASE("fused relaxation: through DenseHopfield, equals the reference, and the GEMM path up to summation order") {
  const Problem p = random_problem(72);
  for (const Phase& phase : kPhases) {
    CAPTURE(phase.name);
    ModelRun fused(p, RelaxationPath::fused), gemm(p, RelaxationPath::gemm);
    const auto by_fused = fused.relaxed(p, phase, 17), by_gemm = gemm.relaxed(p, phase, 17);
    // The reference, given the model's own input drive.
    std::vector<std::vector<float>> states;
    FusedRelaxationBlock body = make_body(p, states, phase, 1);
    DeviceBuffer<float> drive(*fused.backend, p.input_drive.size());
    fused.backend->gemm(Transpose::no, Transpose::no, kBatch, kLayers[1], kLayers[0], 1.0f, fused.x.data(), kLayers[0],
                        fused.model.parameters().weights[0].data(), kLayers[1], 0.0f, drive.data(), kLayers[1]);
    const std::vector<float> drive_host = drive.to_host();
    body.input_drive = drive_host.data();
    fused_relaxation_reference(body);
    test::check_layers_bit_exact("DenseHopfield fused vs reference", by_fused, states);
    // Against the GEMM path: a sum of n terms of magnitude <= 1 * 0.6 differs by
    // about n 2^-24 per step, and a step of these maps (|W| small) does not grow it
    // by much; 1e-5 leaves a factor ~10 over what is seen.
    for (int i = 0; i < kStates; ++i) {
      double worst = 0;
      for (std::size_t k = 0; k < by_fused[i].size(); ++k)
        worst = std::max(worst, double(std::abs(by_fused[i][k] - by_gemm[i][k])));
      test::check_within(std::string("max |fused - gemm|, layer ") + std::to_string(i), worst, 1e-5);
    }
  }
}

TEST_CASE("fused relaxation: the body over run_blocks_on_cpu agrees with the GEMM path for every block size and order") {
  const Problem p = random_problem(73);
  const Phase phase = kPhases[1];
  ModelRun gemm(p, RelaxationPath::gemm);
  const auto by_gemm = gemm.relaxed(p, phase, 17);
  DeviceBuffer<float> drive(*gemm.backend, p.input_drive.size());
  gemm.backend->gemm(Transpose::no, Transpose::no, kBatch, kLayers[1], kLayers[0], 1.0f, gemm.x.data(), kLayers[0],
                     gemm.model.parameters().weights[0].data(), kLayers[1], 0.0f, drive.data(), kLayers[1]);
  Problem with_drive = p;
  with_drive.input_drive = drive.to_host();
  for (const int block_size : kBlockSizes)
    for (const ThreadOrder order : kOrders) {
      const auto by_body = context_run<1>(with_drive, phase, 2, block_size, order);
      for (int i = 0; i < kStates; ++i)
        test::check_within(std::string("body vs gemm, ") + std::to_string(block_size) + " threads, " +
                                       order_name(order) + ", layer " + std::to_string(i),
                                   by_body[i], by_gemm[i], 1e-5);
    }
}

namespace {

// FusedRelaxationBlock with the barrier between the fields and the step left out:
// a thread steps its units while other threads of the phase may still read them
// for their fields. The same phases, so only the barrier differs.
struct FusedRelaxationMissingBarrier {
  FusedRelaxationBlock body;
  std::size_t shared_bytes() const { return body.shared_bytes(); }
  template <class Context>
  void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const FusedRelaxationShared shared = body.shared_arrays(ctx.shared_memory());
    const int block = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { body.load<tile>(shared, block, thread, threads); });
    for (std::int32_t step = 0; step < body.steps; ++step)
      ctx.for_each_thread([&](int thread) {
        body.field_phase<tile>(shared, block, thread, threads);
        body.step_phase<tile>(shared, block, thread, threads);  // no barrier before it
      });
    ctx.for_each_thread([&](int thread) { body.store<tile>(shared, block, thread, threads); });
  }
};

}  // namespace

TEST_CASE("fused relaxation: a body with a barrier left out fails the comparison on the CPU context") {
  const Problem p = random_problem(74);
  const Phase phase = kPhases[0];
  const auto expected = reference_run(p, phase);
  // One thread runs the phases in program order: nothing to race with.
  test::check_layers_bit_exact("missing barrier, 1 thread",
               context_run<1, FusedRelaxationMissingBarrier>(p, phase, 1, 1, ThreadOrder::forward), expected);
  for (const int block_size : {3, 32, 128})
    for (const ThreadOrder order : kOrders) {
      CAPTURE(block_size);
      CAPTURE(order_name(order));
      CHECK_FALSE(test::same_bits_per_layer(
          context_run<1, FusedRelaxationMissingBarrier>(p, phase, 1, block_size, order), expected));
    }
}

TEST_CASE("fused relaxation: Backend::run on TransposeOp is the transpose") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(3);
  const std::vector<float> in = test::random_vector(rng, 7 * 11, -1.0f, 1.0f);
  DeviceBuffer<float> a(*backend, in.size()), b(*backend, in.size());
  a.copy_from_host(in);
  backend->run(TransposeOp{a.data(), b.data(), 7, 11}, 7 * 11);
  std::vector<float> expected(in.size());
  for (int r = 0; r < 7; ++r)
    for (int c = 0; c < 11; ++c) expected[std::size_t(c) * 7 + r] = in[std::size_t(r) * 11 + c];
  test::check_bit_exact("transpose", b.to_host(), expected);
}

TEST_CASE("fused relaxation: relaxation_path = fused refuses the phases it does not cover, auto and gemm take them") {
  const Problem p = random_problem(75);
  ModelRun fused(p, RelaxationPath::fused), automatic(p, RelaxationPath::automatic);
  NetworkState state = fused.model.make_state();
  fused.model.reset(state);
  PhaseSpec csb{Integrator::csb, 0.3f, 5, 0.0f};
  CHECK_THROWS_AS(fused.model.relax(state, fused.target.data(), csb), std::invalid_argument);
  PhaseSpec noisy{Integrator::fixed_point, 0.3f, 5, 0.0f};
  noisy.noise_sigma = 0.1f;
  CHECK_THROWS_AS(fused.model.relax(state, fused.target.data(), noisy), std::invalid_argument);
  PhaseSpec early{Integrator::fixed_point, 0.3f, 5, 0.0f};
  early.tolerance = 1e-3f;
  CHECK(fused.model.fused_path_refusal(early) != nullptr);
  PhaseSpec asynchronous{Integrator::fixed_point, 0.3f, 5, 0.0f};
  asynchronous.order = UpdateOrder::asynchronous;
  CHECK(fused.model.fused_path_refusal(asynchronous) != nullptr);
  CHECK(fused.model.fused_path_refusal(PhaseSpec{Integrator::gradient_flow, 0.3f, 5, 0.5f}) == nullptr);
  NetworkState other = automatic.model.make_state();
  automatic.model.reset(other);
  CHECK_NOTHROW(automatic.model.relax(other, automatic.target.data(), csb));
}

TEST_CASE("fused relaxation: training.relaxation_path parses, and fused is refused for a kind without the path") {
  const auto config = [](const std::string& kind, const std::string& path) {
    return parse_config(nlohmann::json{{"model", {{"kind", kind}, {"layers", {16, 12, 2}}}},
                                       {"training", {{"relaxation_path", path}}}},
                        "test");
  };
  CHECK(config("dense_hopfield", "fused").model.relaxation_path == RelaxationPath::fused);
  CHECK(config("dense_hopfield", "gemm").model.relaxation_path == RelaxationPath::gemm);
  CHECK(parse_config(nlohmann::json::object(), "test").model.relaxation_path == RelaxationPath::automatic);
  CHECK_THROWS_AS(config("dense_hopfield", "sometimes"), ConfigError);
  CHECK_THROWS_WITH_AS(config("conv_hopfield", "fused"), doctest::Contains("no fused relaxation path"), ConfigError);
}

TEST_CASE("fused relaxation: a short training run with relaxation_path = fused learns as the GEMM path does") {
  auto backend = make_backend("cpu");
  const auto train = [&](const std::string& path) {
    test::TempDir dir;
    const Config config =
        parse_config(nlohmann::json{{"model", {{"layers", {16, 12, 2}}}},
                                    {"dynamics", {{"t_free", 15}, {"t_nudge", 6}}},
                                    {"optimizer", {{"lr", 0.1}}},
                                    {"training", {{"epochs", 4}, {"batch_size", 16}, {"eval_batch_size", 50},
                                                  {"relaxation_path", path}}}},
                     "test");
    return run_training(*backend, config, test::halves(), dir.path().string(), false, {});
  };
  const auto fused = train("fused"), gemm = train("gemm");
  REQUIRE(fused.size() == 4);
  MESSAGE("test accuracy after 4 epochs: fused " << fused.back().test_acc << ", gemm " << gemm.back().test_acc);
  CHECK(fused.back().test_acc > 0.95);
  CHECK(fused.back().train_loss < fused.front().train_loss);
  CHECK(std::abs(fused.back().test_acc - gemm.back().test_acc) <= 0.03);
}

}  // namespace eqprop
