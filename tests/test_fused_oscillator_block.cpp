// The fused relaxation of the layered oscillator network (kernels/fused_oscillator_block.h)
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
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "hosttools/cli.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/execution_context.h"
#include "kernels/fused_oscillator_block.h"
#include "models/oscillator_network.h"
#include "tests/layer_bit_checks.h"
#include "tests/block_shapes.h"
#include "tests/epoch_records.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

// Three oscillator layers (input 9 -> 13 -> 7 -> 5): the middle one has a drive and
// a feedback, sizes that are multiples of no tile or block size below.
const std::vector<int> kLayers = {9, 13, 7, 5};
constexpr int kBatch = 5;
constexpr int kStates = 3;
constexpr float kShil = 0.4f;
constexpr float kDt = 0.25f;
constexpr float kInputScale = kPi;

// A network's host arrays: couplings J_l (layers[l], layers[l+1]), their transposes,
// biases h, the input x, its fields cos(pi x) J_0 and sin(pi x) J_0 (as set_input
// computes them), a one-hot target and random starting phases.
struct Problem {
  std::vector<std::vector<float>> weights, transposed, biases, phases;
  std::vector<float> x, input_cos_drive, input_sin_drive, target;
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
    p.phases.push_back(test::random_vector(rng, std::size_t(kBatch) * columns, -kPi, kPi));
  }
  p.x = test::random_vector(rng, std::size_t(kBatch) * kLayers[0], 0.0f, 1.0f);
  // The model's own input fields: its trig op and its backend's GEMMs.
  auto backend = make_backend("cpu");
  const int n0 = kLayers[0], n1 = kLayers[1];
  const std::size_t inputs = std::size_t(kBatch) * n0, fields = std::size_t(kBatch) * n1;
  DeviceBuffer<float> x(*backend, inputs), c(*backend, inputs), s(*backend, inputs), w(*backend, std::size_t(n0) * n1),
      cd(*backend, fields), sd(*backend, fields);
  x.copy_from_host(p.x);
  w.copy_from_host(p.weights[0]);
  backend->run(OscillatorTrigOp{x.data(), kInputScale, c.data(), s.data(), nullptr, kLayers[0]},
               std::int64_t(inputs));
  backend->gemm(Transpose::no, Transpose::no, kBatch, n1, n0, 1.0f, c.data(), n0, w.data(), n1, 0.0f, cd.data(), n1);
  backend->gemm(Transpose::no, Transpose::no, kBatch, n1, n0, 1.0f, s.data(), n0, w.data(), n1, 0.0f, sd.data(), n1);
  p.input_cos_drive = cd.to_host();
  p.input_sin_drive = sd.to_host();
  p.target = test::random_one_hot(rng, kBatch, kLayers.back());
  return p;
}

struct Phase {
  float beta;  // 0: free
  const char* name;
};
constexpr Phase kPhases[] = {{0.0f, "free"}, {0.8f, "nudged +0.8"}, {-0.8f, "nudged -0.8"}};

// The body over `phases` (the caller's copy of the problem's phases).
FusedOscillatorBlock make_body(const Problem& p, std::vector<std::vector<float>>& phases, const Phase& phase,
                               int systems_per_block, int steps = 17) {
  phases = p.phases;
  FusedOscillatorBlock body{};
  for (int i = 0; i < kStates; ++i) {
    body.states[i] = phases[i].data();
    body.weights[i] = i > 0 ? p.weights[i].data() : nullptr;
    body.weights_transposed[i] = i + 1 < kStates ? p.transposed[i + 1].data() : nullptr;
    body.bias[i] = p.biases[i].data();
    body.units[i] = kLayers[i + 1];
  }
  body.input_cos_drive = p.input_cos_drive.data();
  body.input_sin_drive = p.input_sin_drive.data();
  body.target = phase.beta != 0.0f ? p.target.data() : nullptr;
  body.beta = phase.beta;
  body.dt = kDt;
  body.shil = kShil;
  body.layers = kStates;
  body.batch = kBatch;
  body.systems_per_block = systems_per_block;
  body.steps = steps;
  return body;
}

std::vector<std::vector<float>> reference_run(const Problem& p, const Phase& phase) {
  std::vector<std::vector<float>> phases;
  fused_oscillator_reference(make_body(p, phases, phase, 1));
  return phases;
}

template <int TileWidth, class Body = FusedOscillatorBlock>
std::vector<std::vector<float>> context_run(const Problem& p, const Phase& phase, int systems_per_block,
                                            int block_size, ThreadOrder order) {
  std::vector<std::vector<float>> phases;
  const FusedOscillatorBlock inner = make_body(p, phases, phase, systems_per_block);
  const Body body{inner};
  run_blocks_on_cpu<TileWidth>(body, inner.blocks(), block_size, order);
  return phases;
}

// The largest difference of two layers' phases around the circle.
double largest_phase_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k)
    worst = std::max(worst, std::abs(std::remainder(double(a[k]) - double(b[k]), 2.0 * kPi)));
  return worst;
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

// An OscillatorNetwork on the CPU backend with the problem's parameters and input.
struct ModelRun {
  std::unique_ptr<Backend> backend = make_backend("cpu");
  OscillatorNetwork model;
  DeviceBuffer<float> x, target;
  ModelRun(const Problem& p, RelaxationPath path)
      : model(*backend, OscillatorShape{kLayers, kShil, kInputScale}, kBatch, path) {
    for (int l = 0; l < kStates; ++l) {
      model.parameters().weights[l].copy_from_host(p.weights[l]);
      model.parameters().biases[l].copy_from_host(p.biases[l]);
    }
    x = DeviceBuffer<float>(*backend, p.x.size());
    x.copy_from_host(p.x);
    target = DeviceBuffer<float>(*backend, p.target.size());
    target.copy_from_host(p.target);
    model.set_input(x.data(), kBatch);
  }
  std::vector<std::vector<float>> relaxed(const Problem& p, const Phase& phase, int steps) {
    NetworkState state = model.make_state();
    for (int i = 0; i < kStates; ++i) state.layers[i].copy_from_host(p.phases[i]);
    model.relax(state, target.data(), PhaseSpec{Integrator::gradient_flow, kDt, steps, phase.beta});
    std::vector<std::vector<float>> host;
    for (int i = 0; i < kStates; ++i) host.push_back(state.layers[i].to_host());
    return host;
  }
};

}  // namespace

TEST_CASE("fused oscillator: the CPU context equals the naive reference bit for bit, any block shape, order, tile") {
  const Problem p = random_problem(91);
  for (const Phase& phase : kPhases) {
    const auto expected = reference_run(p, phase);
    CHECK(expected != p.phases);  // the phase moved the state
    check_every_shape<1>(p, phase, expected);  // the GPU's mapping
    check_every_shape<4>(p, phase, expected);  // runs cut at row ends
    check_every_shape<kCpuTileWidth>(p, phase, expected);  // the CPU backend's
  }
}

TEST_CASE("fused oscillator: through OscillatorNetwork, equals the reference, and the GEMM path up to summation order") {
  const Problem p = random_problem(92);
  double worst_seen = 0;
  for (const Phase& phase : kPhases) {
    CAPTURE(phase.name);
    ModelRun fused(p, RelaxationPath::fused), gemm(p, RelaxationPath::gemm);
    const auto by_fused = fused.relaxed(p, phase, 30), by_gemm = gemm.relaxed(p, phase, 30);
    std::vector<std::vector<float>> phases;
    fused_oscillator_reference(make_body(p, phases, phase, 1, 30));
    test::check_layers_bit_exact("OscillatorNetwork fused vs reference", by_fused, phases);
    // Against the GEMM path: a sum of n terms of magnitude <= 0.6 differs by about
    // n 2^-24 per step and the phases near pi carry 2.4e-7 per ulp; 30 steps of
    // gradient flow, which grows a difference along an unstable direction, took it
    // to 8.5e-6 at most here (the message below). 1e-4 leaves a factor ~10.
    for (int i = 0; i < kStates; ++i) {
      const double worst = largest_phase_difference(by_fused[i], by_gemm[i]);
      worst_seen = std::max(worst_seen, worst);
      test::check_within(std::string("max |fused - gemm| of the phases, layer ") + std::to_string(i), worst, 1e-4);
    }
  }
  MESSAGE("largest |fused - gemm| phase difference after 30 steps: " << worst_seen);
}

TEST_CASE("fused oscillator: the body over run_blocks_on_cpu agrees with the GEMM path for every block size and order") {
  const Problem p = random_problem(93);
  const Phase phase = kPhases[1];
  ModelRun gemm(p, RelaxationPath::gemm);
  const auto by_gemm = gemm.relaxed(p, phase, 17);
  for (const int block_size : kBlockSizes)
    for (const ThreadOrder order : kOrders) {
      const auto by_body = context_run<1>(p, phase, 2, block_size, order);
      for (int i = 0; i < kStates; ++i)
        test::check_within(std::string("body vs gemm, ") + std::to_string(block_size) + " threads, " +
                               order_name(order) + ", layer " + std::to_string(i),
                           largest_phase_difference(by_body[i], by_gemm[i]), 1e-4);
    }
}

namespace {

// FusedOscillatorBlock with the barrier between the fields and the step left out:
// a thread moves its phases (and rewrites their cos and sin) while other threads of
// the phase may still read them for their fields. Only the barrier differs.
struct FusedOscillatorMissingBarrier {
  FusedOscillatorBlock body;
  std::size_t shared_bytes() const { return body.shared_bytes(); }
  template <class Context>
  void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const FusedOscillatorShared shared = body.shared_arrays(ctx.shared_memory());
    const int block = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { body.load<tile>(shared, block, thread, threads); });
    for (std::int32_t step = 0; step < body.steps; ++step)
      ctx.for_each_thread([&](int thread) {
        body.field_phase<tile>(shared, block, thread, threads);
        body.step_phase<tile>(shared, block, thread, threads);  // no barrier before it
      });
    ctx.for_each_thread([&](int thread) { body.store_states<tile>(shared.phases, block, thread, threads); });
  }
};

}  // namespace

TEST_CASE("fused oscillator: a body with a barrier left out fails the comparison on the CPU context") {
  const Problem p = random_problem(94);
  const Phase phase = kPhases[0];
  const auto expected = reference_run(p, phase);
  // One thread runs the phases in program order: nothing to race with.
  test::check_layers_bit_exact("missing barrier, 1 thread",
               context_run<1, FusedOscillatorMissingBarrier>(p, phase, 1, 1, ThreadOrder::forward), expected);
  for (const int block_size : {3, 32, 128})
    for (const ThreadOrder order : kOrders) {
      CAPTURE(block_size);
      CAPTURE(order_name(order));
      CHECK_FALSE(test::same_bits_per_layer(
          context_run<1, FusedOscillatorMissingBarrier>(p, phase, 1, block_size, order), expected));
    }
}

TEST_CASE("fused oscillator: relaxation_path = fused refuses the phases it does not cover, auto and gemm take them") {
  const Problem p = random_problem(95);
  ModelRun fused(p, RelaxationPath::fused), automatic(p, RelaxationPath::automatic);
  NetworkState state = fused.model.make_state();
  fused.model.reset(state);
  PhaseSpec noisy{Integrator::gradient_flow, kDt, 5, 0.0f};
  noisy.noise_sigma = 0.1f;
  CHECK_THROWS_WITH_AS(fused.model.relax(state, fused.target.data(), noisy),
                       doctest::Contains("without Langevin noise"), std::invalid_argument);
  PhaseSpec early{Integrator::gradient_flow, kDt, 5, 0.0f};
  early.tolerance = 1e-3f;
  CHECK(fused.model.fused_path_refusal(early) != nullptr);
  PhaseSpec asynchronous{Integrator::gradient_flow, kDt, 5, 0.0f};
  asynchronous.order = UpdateOrder::asynchronous;
  CHECK(fused.model.fused_path_refusal(asynchronous) != nullptr);
  CHECK(fused.model.fused_path_refusal(PhaseSpec{Integrator::fixed_point, kDt, 5, 0.0f}) != nullptr);
  CHECK(fused.model.fused_path_refusal(PhaseSpec{Integrator::gradient_flow, kDt, 5, 0.5f}) == nullptr);
  // Five oscillator layers: more than the body's fixed arrays hold.
  auto backend = make_backend("cpu");
  OscillatorNetwork deep(*backend, OscillatorShape{{4, 3, 3, 3, 3, 2}, 0.0f, kInputScale}, 2, RelaxationPath::fused);
  CHECK(std::string(deep.fused_path_refusal(PhaseSpec{Integrator::gradient_flow, kDt, 5, 0.0f})) ==
        "it takes at most 4 oscillator layers");
  NetworkState other = automatic.model.make_state();
  automatic.model.reset(other);
  CHECK_NOTHROW(automatic.model.relax(other, automatic.target.data(), noisy));
}

TEST_CASE("fused oscillator: training.relaxation_path = fused parses for model.kind = oscillator") {
  const Config config = parse_config(
      nlohmann::json{{"model", {{"kind", "oscillator"}, {"layers", {16, 12, 2}}}},
                     {"dynamics", {{"integrator", "gradient_flow"}, {"nudge_integrator", "gradient_flow"}}},
                     {"training", {{"relaxation_path", "fused"}}}},
      "test");
  CHECK(config.model.relaxation_path == RelaxationPath::fused);
}

TEST_CASE("fused oscillator: a short FashionMNIST run of the oscillator recipe with fused learns as gemm does") {
  const char* images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(images)) {
    MESSAGE("skipped: " << images << " is not installed (Debian package dataset-fashion-mnist)");
    return;
  }
  const auto train = [&](const std::string& path) {
    test::TempDir dir;
    const std::string run_dir = dir.file("run");
    std::ostringstream out, err;
    const int code = run_cli({"train", "--config", std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_oscillator.json",
                              "--out", run_dir, "--device", "cpu", "--set", "training.epochs=2", "--set",
                              "data.train_limit=2000", "--set", "data.test_limit=500", "--set",
                              "training.relaxation_path=" + path},
                             out, err);
    REQUIRE_MESSAGE(code == 0, err.str());
    return test::read_epoch_records(run_dir);
  };
  const auto fused = train("fused"), gemm = train("gemm");
  REQUIRE(fused.size() == 2);
  REQUIRE(gemm.size() == 2);
  const double fused_acc = fused.back()["test_acc"].get<double>(), gemm_acc = gemm.back()["test_acc"].get<double>();
  MESSAGE("test accuracy after 2 epochs on 2000 samples: fused " << fused_acc << ", gemm " << gemm_acc);
  CHECK(fused_acc > 0.6);
  CHECK(fused.back()["train_loss"].get<double>() < fused.front()["train_loss"].get<double>());
  CHECK(std::abs(fused_acc - gemm_acc) <= 0.03);
}

}  // namespace eqprop
