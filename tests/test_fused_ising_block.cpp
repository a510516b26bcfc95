// The fused annealing of the layered Ising network (kernels/fused_ising_block.h)
// over the CPU execution context (kernels/execution_context.h): bit for bit equal to
// its naive reference for every block size, thread order, tile width and systems per
// block; through IsingNetwork equal to the reference; a body with one barrier left
// out is caught by the same comparison; the model's training.relaxation_path switch
// refuses what it does not cover; and a short FashionMNIST run learns as the GEMM
// path does. That its sweeps sample the Boltzmann distribution is checked beside the
// GEMM path's in tests/test_ising_network.cpp.
#include <doctest/doctest.h>

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

#include "hosttools/cli.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/execution_context.h"
#include "kernels/fused_ising_block.h"
#include "models/ising_network.h"
#include "tests/layer_bit_checks.h"
#include "tests/block_shapes.h"
#include "tests/epoch_records.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// Three spin layers (input 9 -> 13 -> 7 -> 2 classes x 3 spins): the middle one has
// a drive and a feedback, sizes that are multiples of no tile or block size below.
const std::vector<int> kLayers = {9, 13, 7, 2};
constexpr int kSpinsPerClass = 3;
constexpr int kReplicas = 2;
constexpr int kSamples = 3;
constexpr int kRows = kSamples * kReplicas;
constexpr int kStates = 3;
const std::vector<int> kUnits = {9, 13, 7, 6};  // IsingNetworkShape::all_units()

// A network's host arrays: couplings W_l (units[l], units[l+1]), their transposes,
// biases h, the input x and its field x W_0 on every replica row (as set_input
// computes it), a one-hot target and random starting spins.
struct Problem {
  std::vector<std::vector<float>> weights, transposed, biases, spins;
  std::vector<float> x, input_drive, target;
};

Problem random_problem(std::uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p;
  for (std::size_t l = 0; l + 1 < kUnits.size(); ++l) {
    const int rows = kUnits[l], columns = kUnits[l + 1];
    p.weights.push_back(test::random_vector(rng, std::size_t(rows) * columns, -0.6f, 0.6f));
    std::vector<float> t(std::size_t(rows) * columns);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < columns; ++c) t[std::size_t(c) * rows + r] = p.weights.back()[std::size_t(r) * columns + c];
    p.transposed.push_back(t);
    p.biases.push_back(test::random_vector(rng, std::size_t(columns), -0.3f, 0.3f));
    std::vector<float> spins(std::size_t(kRows) * columns);
    for (float& s : spins) s = rng() & 1u ? 1.0f : -1.0f;
    p.spins.push_back(spins);
  }
  p.x = test::random_vector(rng, std::size_t(kSamples) * kUnits[0], 0.0f, 1.0f);
  // The model's own input field: its GEMM per replica (IsingNetwork::set_input).
  auto backend = make_backend("cpu");
  const int n0 = kUnits[0], n1 = kUnits[1];
  DeviceBuffer<float> x(*backend, p.x.size()), w(*backend, std::size_t(n0) * n1),
      drive(*backend, std::size_t(kRows) * n1);
  x.copy_from_host(p.x);
  w.copy_from_host(p.weights[0]);
  for (int r = 0; r < kReplicas; ++r)
    backend->gemm(Transpose::no, Transpose::no, kSamples, n1, n0, 1.0f, x.data(), n0, w.data(), n1, 0.0f,
                  drive.data() + std::size_t(r) * n1, kReplicas * n1);
  p.input_drive = drive.to_host();
  p.target = test::random_one_hot(rng, kSamples, kLayers.back());
  return p;
}

struct Phase {
  float beta;  // 0: free (annealed)
  SpinUpdate rule;
  const char* name;
};
constexpr Phase kPhases[] = {{0.0f, SpinUpdate::gibbs, "free, gibbs"},
                             {0.0f, SpinUpdate::metropolis, "free, metropolis"},
                             {2.0f, SpinUpdate::gibbs, "nudged +2"},
                             {-2.0f, SpinUpdate::metropolis, "nudged -2, metropolis"}};
constexpr std::uint64_t kFirstSample = 40;
constexpr std::uint32_t kNoisePhase = 1;
constexpr std::uint64_t kSeed = 17;

// The body over `spins` (the caller's copy of the problem's spins), keyed as
// IsingNetwork::relax_fused keys it.
FusedIsingBlock make_body(const Problem& p, std::vector<std::vector<float>>& spins, const Phase& phase,
                          int systems_per_block, int steps = 9) {
  spins = p.spins;
  FusedIsingBlock body{};
  std::uint64_t per_row = 0;
  for (int i = 0; i < kStates; ++i) per_row += std::uint64_t(kUnits[i + 1]);
  std::uint64_t offset = 0;
  for (int i = 0; i < kStates; ++i) {
    body.states[i] = spins[i].data();
    body.weights[i] = i > 0 ? p.weights[i].data() : nullptr;
    body.weights_transposed[i] = i + 1 < kStates ? p.transposed[i + 1].data() : nullptr;
    body.bias[i] = p.biases[i].data();
    body.units[i] = kUnits[i + 1];
    body.first_key[i] = kFirstSample * kReplicas * per_row + offset;
    offset += std::uint64_t(kUnits[i + 1]);
  }
  body.input_drive = p.input_drive.data();
  body.target = phase.beta != 0.0f ? p.target.data() : nullptr;
  body.beta = phase.beta;
  body.nudge = phase.beta / kSpinsPerClass;
  body.temperature_start = 2.0f;
  body.temperature_end = 0.2f;
  body.nudged = phase.beta != 0.0f;
  body.rule = phase.rule;
  body.replicas = kReplicas;
  body.spins_per_class = kSpinsPerClass;
  body.classes = kLayers.back();
  body.seed = kSeed;
  body.key_row_stride = per_row;
  body.noise_phase = kNoisePhase;
  body.layers = kStates;
  body.batch = kRows;
  body.systems_per_block = systems_per_block;
  body.steps = steps;
  return body;
}

std::vector<std::vector<float>> reference_run(const Problem& p, const Phase& phase, int steps = 9) {
  std::vector<std::vector<float>> spins;
  fused_ising_reference(make_body(p, spins, phase, 1, steps));
  return spins;
}

template <int TileWidth, class Body = FusedIsingBlock>
std::vector<std::vector<float>> context_run(const Problem& p, const Phase& phase, int systems_per_block,
                                            int block_size, ThreadOrder order) {
  std::vector<std::vector<float>> spins;
  const FusedIsingBlock inner = make_body(p, spins, phase, systems_per_block);
  const Body body{inner};
  run_blocks_on_cpu<TileWidth>(body, inner.blocks(), block_size, order);
  return spins;
}

using test::kBlockSizes;
using test::kOrders;
using test::order_name;

template <int TileWidth>
void check_every_shape(const Problem& p, const Phase& phase, const std::vector<std::vector<float>>& expected) {
  for (const int systems : {1, 4, kRows})  // one row per block, a partial last block, one block
    for (const int block_size : kBlockSizes)
      for (const ThreadOrder order : kOrders)
        test::check_layers_bit_exact(std::string(phase.name) + ", tile " + std::to_string(TileWidth) + ", " +
                                         std::to_string(systems) + " rows per block, " + std::to_string(block_size) +
                                         " threads, " + order_name(order),
                                     context_run<TileWidth>(p, phase, systems, block_size, order), expected);
}

// An IsingNetwork on the CPU backend with the problem's parameters and input.
struct ModelRun {
  std::unique_ptr<Backend> backend = make_backend("cpu");
  IsingNetwork model;
  DeviceBuffer<float> x, target;
  ModelRun(const Problem& p, const Phase& phase, RelaxationPath path)
      : model(*backend, IsingNetworkShape{kLayers, kSpinsPerClass, kReplicas},
              IsingDynamics{2.0f, 0.2f, phase.rule, IsingRelaxation::annealing}, kSamples, path) {
    for (int l = 0; l < kStates; ++l) {
      model.parameters().weights[l].copy_from_host(p.weights[l]);
      model.parameters().biases[l].copy_from_host(p.biases[l]);
    }
    x = DeviceBuffer<float>(*backend, p.x.size());
    x.copy_from_host(p.x);
    target = DeviceBuffer<float>(*backend, p.target.size());
    target.copy_from_host(p.target);
    model.set_input(x.data(), kSamples);
  }
  std::vector<std::vector<float>> relaxed(const Problem& p, const Phase& phase, int steps) {
    NetworkState state = model.make_state();
    for (int i = 0; i < kStates; ++i) state.layers[i].copy_from_host(p.spins[i]);
    PhaseSpec spec;
    spec.steps = steps;
    spec.beta = phase.beta;
    spec.noise_seed = kSeed;
    spec.first_sample = kFirstSample;
    spec.noise_phase = kNoisePhase;
    model.relax(state, target.data(), spec);
    std::vector<std::vector<float>> host;
    for (int i = 0; i < kStates; ++i) host.push_back(state.layers[i].to_host());
    return host;
  }
};

}  // namespace

TEST_CASE("fused ising: the CPU context equals the naive reference bit for bit, any block shape, order, tile") {
  const Problem p = random_problem(61);
  for (const Phase& phase : kPhases) {
    const auto expected = reference_run(p, phase);
    CHECK(expected != p.spins);  // the sweeps flipped spins
    check_every_shape<1>(p, phase, expected);              // the GPU's mapping
    check_every_shape<4>(p, phase, expected);              // runs cut at row ends
    check_every_shape<kCpuTileWidth>(p, phase, expected);  // the CPU backend's
  }
}

TEST_CASE("fused ising: through IsingNetwork it equals the reference, and it draws the GEMM path's uniforms") {
  const Problem p = random_problem(62);
  int same = 0, total = 0;
  for (const Phase& phase : kPhases) {
    CAPTURE(phase.name);
    ModelRun fused(p, phase, RelaxationPath::fused), gemm(p, phase, RelaxationPath::gemm);
    const auto by_fused = fused.relaxed(p, phase, 9), by_gemm = gemm.relaxed(p, phase, 9);
    test::check_layers_bit_exact("IsingNetwork fused vs reference", by_fused, reference_run(p, phase));
    // The same keys and the same per-spin math: the paths differ only where a field's
    // summation order moves a flip probability across its uniform, and a flip then
    // changes the fields after it. Most spins still agree.
    for (int i = 0; i < kStates; ++i)
      for (std::size_t k = 0; k < by_fused[i].size(); ++k, ++total) same += by_fused[i][k] == by_gemm[i][k];
  }
  MESSAGE("spins equal on the fused and GEMM paths after 9 sweeps: " << same << " of " << total);
  CHECK(same >= total * 9 / 10);
}

namespace {

// FusedIsingBlock with the barrier between the two halves of a sweep left out: a
// thread computes the even layers' fields from odd spins that other threads may not
// have drawn yet. Only the barrier differs.
struct FusedIsingMissingBarrier {
  FusedIsingBlock body;
  std::size_t shared_bytes() const { return body.shared_bytes(); }
  template <class Context>
  void operator()(Context& ctx) const {
    constexpr int tile = Context::tile_width;
    const FusedIsingShared shared = body.shared_arrays(ctx.shared_memory());
    const int block = ctx.block(), threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { body.load<tile>(shared, block, thread, threads); });
    for (std::int32_t sweep = 0; sweep < body.steps; ++sweep)
      ctx.for_each_thread([&](int thread) {
        body.half_sweep<tile>(shared, block, thread, threads, 0, sweep);
        body.half_sweep<tile>(shared, block, thread, threads, 1, sweep);  // no barrier before it
      });
    ctx.for_each_thread([&](int thread) { body.store_states<tile>(shared.spins, block, thread, threads); });
  }
};

}  // namespace

TEST_CASE("fused ising: a body with a barrier left out fails the comparison on the CPU context") {
  const Problem p = random_problem(63);
  const Phase phase = kPhases[0];
  const auto expected = reference_run(p, phase);
  // One thread runs the phases in program order: nothing to race with.
  test::check_layers_bit_exact("missing barrier, 1 thread",
                               context_run<1, FusedIsingMissingBarrier>(p, phase, 1, 1, ThreadOrder::forward),
                               expected);
  for (const int block_size : {3, 32, 128})
    for (const ThreadOrder order : kOrders) {
      CAPTURE(block_size);
      CAPTURE(order_name(order));
      CHECK_FALSE(test::same_bits_per_layer(
          context_run<1, FusedIsingMissingBarrier>(p, phase, kRows, block_size, order), expected));
    }
}

TEST_CASE("fused ising: relaxation_path = fused refuses the phases it does not cover, auto and gemm take them") {
  auto backend = make_backend("cpu");
  IsingNetwork dsb(*backend, IsingNetworkShape{kLayers, kSpinsPerClass, 1},
                   IsingDynamics{2.0f, 0.2f, SpinUpdate::gibbs, IsingRelaxation::dsb}, 2, RelaxationPath::fused);
  PhaseSpec spec;
  spec.steps = 3;
  CHECK(std::string(dsb.fused_path_refusal(spec)) == "it runs annealing sweeps only (not dSB)");
  IsingNetwork annealing(*backend, IsingNetworkShape{kLayers, kSpinsPerClass, 1}, IsingDynamics{}, 2,
                         RelaxationPath::fused);
  CHECK(annealing.fused_path_refusal(spec) == nullptr);
  PhaseSpec reading = spec;
  reading.read_out = true;
  CHECK(std::string(annealing.fused_path_refusal(reading)) == "it has no fused ADC read-out");
  // Five spin layers: more than the body's fixed arrays hold.
  IsingNetwork deep(*backend, IsingNetworkShape{{4, 3, 3, 3, 3, 2}, 1, 1}, IsingDynamics{}, 2, RelaxationPath::fused);
  CHECK(std::string(deep.fused_path_refusal(spec)) == "it takes at most 4 spin layers");
  DeviceBuffer<float> x(*backend, 8), target(*backend, 4);
  x.copy_from_host(std::vector<float>(8, 0.5f));
  target.copy_from_host({1.0f, 0.0f, 0.0f, 1.0f});
  deep.set_input(x.data(), 2);
  NetworkState state = deep.make_state();
  deep.reset(state);
  CHECK_THROWS_WITH_AS(deep.relax(state, target.data(), spec), doctest::Contains("at most 4 spin layers"),
                       std::invalid_argument);
  IsingNetwork automatic(*backend, IsingNetworkShape{{4, 3, 3, 3, 3, 2}, 1, 1}, IsingDynamics{}, 2,
                         RelaxationPath::automatic);
  automatic.set_input(x.data(), 2);
  NetworkState other = automatic.make_state();
  automatic.reset(other);
  CHECK_NOTHROW(automatic.relax(other, target.data(), spec));
}

TEST_CASE("fused ising: a short FashionMNIST run of the Ising recipe with fused learns as gemm does") {
  const char* images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(images)) {
    MESSAGE("skipped: " << images << " is not installed (Debian package dataset-fashion-mnist)");
    return;
  }
  const auto train = [&](const std::string& path) {
    test::TempDir dir;
    const std::string run_dir = dir.file("run");
    std::ostringstream out, err;
    const int code = run_cli({"train", "--config", std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_ising.json",
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
  CHECK(fused_acc > 0.5);
  CHECK(std::abs(fused_acc - gemm_acc) <= 0.05);
}

}  // namespace eqprop
