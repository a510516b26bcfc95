// The many-replica solver (engine/maxcut_solver.h) on the CPU backend: every method
// (bSB and dSB on both the fused and the GEMM path) finds the brute-force MAX-CUT
// optimum of small random graphs in most replicas, the two SB paths agree bit for
// bit where the GEMM is exact,
// an Ising problem with fields (the gauge path) reaches its brute-force ground
// state, a seed gives the same answer twice, the time limit stops a long run
// promptly and changes nothing when it is not reached, and a G-set instance reaches
// a cut close to its best known.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/maxcut_solver.h"
#include "hosttools/gset_reader.h"
#include "kernels/backend.h"
#include "kernels/error.h"
#include "models/ising_problem.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// An Erdos-Renyi graph: each pair an edge with probability `density`, weight +1
// or, with signed weights, +1 / -1.
Graph random_graph(std::mt19937& rng, int n, double density, bool signed_weights) {
  std::bernoulli_distribution edge(density), negative(0.5);
  Graph graph;
  graph.nodes = n;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j)
      if (edge(rng)) graph.edges.push_back({i, j, signed_weights && negative(rng) ? -1.0 : 1.0});
  return graph;
}

// The lowest energy over all 2^n assignments (Gray-code order: one flip per state).
double brute_force_ground_energy(const IsingProblem& problem) {
  const int n = problem.spins;
  std::vector<std::int8_t> spins(static_cast<std::size_t>(n), -1);
  double best = ising_energy(problem, spins.data());
  for (std::uint32_t k = 1; k < (1u << n); ++k) {
    spins[__builtin_ctz(k)] = static_cast<std::int8_t>(-spins[__builtin_ctz(k)]);
    best = std::min(best, ising_energy(problem, spins.data()));
  }
  return best;
}

TEST_CASE("maxcut: bSB, dSB, SA and OIM find the brute-force optimum of small random graphs in most replicas") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(41);
  struct Instance {
    int n;
    double density;
    bool signed_weights;
  };
  const Instance instances[] = {{12, 0.5, false}, {16, 0.3, true}, {18, 0.5, false}, {20, 0.25, true}};
  for (const Instance& instance : instances) {
    const Graph graph = random_graph(rng, instance.n, instance.density, instance.signed_weights);
    const IsingProblem problem = maxcut_to_ising(graph);
    const double ground = brute_force_ground_energy(problem);
    for (const SolverMethod method : {SolverMethod::bsb, SolverMethod::dsb, SolverMethod::sa, SolverMethod::oim}) {
      const bool sb = method == SolverMethod::bsb || method == SolverMethod::dsb;
      for (const SolverPath path : {SolverPath::gemm, SolverPath::fused_block}) {
        if (path == SolverPath::fused_block && !sb) continue;
        SolverOptions options;
        options.method = method;
        options.path = path;
        options.replicas = 64;
        options.steps = method == SolverMethod::sa ? 300 : 500;
        options.seed = 3;
        options.evaluations = 1;
        const SolverResult result = solve_ising(*backend, problem, options);
        const auto optimal = std::count_if(result.final_energies.begin(), result.final_energies.end(),
                                           [&](double e) { return e == ground; });
        const double fraction = double(optimal) / options.replicas;
        const std::string weights = instance.signed_weights ? "+-1" : "+1";
        MESSAGE("n " << instance.n << " (" << graph.edges.size() << " edges of " << weights << "), "
                     << solver_method_name(method) << (sb ? " (" + solver_path_name(result.path) + ")" : "")
                     << ": optimum cut "
                     << cut_from_energy(graph, ground) << " in " << optimal << "/" << options.replicas << " replicas");
        CHECK(result.path == path);
        CHECK(result.best_energy == ground);
        CHECK(cut_value(graph, result.best_spins.data()) == cut_from_energy(graph, ground));
        CHECK(fraction > 0.5);
        CHECK(result.steps_done == options.steps);
        CHECK(result.spin_updates_per_s > 0);
      }
    }
  }
}

TEST_CASE("maxcut: dSB's fused and GEMM paths are bit-identical on integer couplings") {
  // Same initial state (SbInitOp), same pump schedule (sb_detuning), same step
  // (sb_oscillator_step); the field J sign(x) sums exact integers on both paths.
  auto backend = make_backend("cpu");
  std::mt19937 rng(45);
  const IsingProblem problem = maxcut_to_ising(random_graph(rng, 70, 0.3, true));
  SolverOptions options;
  options.method = SolverMethod::dsb;
  options.replicas = 24;
  options.steps = 300;
  options.rounds = 2;
  options.evaluations = 3;  // the fused path resumes from global memory between chunks
  options.path = SolverPath::gemm;
  const SolverResult gemm = solve_ising(*backend, problem, options);
  options.path = SolverPath::fused_block;
  const SolverResult fused = solve_ising(*backend, problem, options);
  CHECK(gemm.path == SolverPath::gemm);
  CHECK(fused.path == SolverPath::fused_block);
  CHECK(fused.final_energies == gemm.final_energies);
  CHECK(fused.best_spins == gemm.best_spins);
  CHECK(fused.best_round == gemm.best_round);
  CHECK(fused.best_step == gemm.best_step);
}

TEST_CASE("maxcut: the automatic path is fused below the backend's threshold, GEMM above, and SA has no fused path") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(46);
  const int threshold = fused_sb_max_spins(*backend);
  CHECK_FALSE(backend->traits().has_on_chip_blocks);  // the CPU backend: never fused automatically
  CHECK(threshold == 0);
  SolverOptions options;
  options.method = SolverMethod::bsb;
  options.replicas = 4;
  options.steps = 10;
  for (const int n : {threshold, threshold + 1}) {
    if (n < 2) continue;
    CAPTURE(n);
    const SolverResult result = solve_ising(*backend, maxcut_to_ising(random_graph(rng, n, 0.1, false)), options);
    CHECK(result.path == (n <= threshold ? SolverPath::fused_block : SolverPath::gemm));
  }
  options.method = SolverMethod::sa;
  options.path = SolverPath::fused_block;
  const IsingProblem small = maxcut_to_ising(random_graph(rng, 8, 0.5, false));
  test::check_contains(test::thrown_message<ConfigError>([&] { solve_ising(*backend, small, options); }),
                       {"bsb and dsb only"});
  CHECK(parse_solver_path("auto") == SolverPath::automatic);
  CHECK(parse_solver_path("fused") == SolverPath::fused_block);
  CHECK(parse_solver_path("gemm") == SolverPath::gemm);
  test::check_contains(test::thrown_message<ConfigError>([&] { parse_solver_path("tiled"); }), {"auto, fused, gemm"});
}

TEST_CASE("ising: the solver reaches the ground state of a problem with fields (absorbed by an extra spin)") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(42);
  std::normal_distribution<double> normal(0.0, 1.0);
  IsingProblem problem;
  problem.spins = 14;
  for (int i = 0; i < problem.spins; ++i)
    for (int j = i + 1; j < problem.spins; ++j)
      if (rng() % 3 == 0) problem.couplings.push_back({i, j, normal(rng)});
  problem.fields.resize(problem.spins);
  for (double& h : problem.fields) h = 0.7 * normal(rng);
  const double ground = brute_force_ground_energy(problem);
  for (const SolverMethod method : {SolverMethod::bsb, SolverMethod::dsb, SolverMethod::sa, SolverMethod::oim}) {
    SolverOptions options;
    options.method = method;
    options.replicas = 32;
    options.steps = 400;
    const SolverResult result = solve_ising(*backend, problem, options);
    CAPTURE(solver_method_name(method));
    REQUIRE(result.best_spins.size() == std::size_t(problem.spins));
    CHECK(result.best_energy == doctest::Approx(ground).epsilon(1e-12));
    CHECK(ising_energy(problem, result.best_spins.data()) == result.best_energy);
  }
}

TEST_CASE("maxcut: the solver is deterministic for a seed, and a new seed starts elsewhere") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(43);
  const IsingProblem problem = maxcut_to_ising(random_graph(rng, 60, 0.2, true));
  for (const SolverMethod method : {SolverMethod::bsb, SolverMethod::dsb, SolverMethod::sa}) {
    CAPTURE(solver_method_name(method));
    SolverOptions options;
    options.method = method;
    options.replicas = 24;  // > 8 per core: the CPU splits the replicas over the cores
    options.steps = 100;
    options.rounds = 2;
    options.seed = 17;
    const SolverResult first = solve_ising(*backend, problem, options);
    const SolverResult second = solve_ising(*backend, problem, options);
    CHECK(first.best_spins == second.best_spins);
    CHECK(first.final_energies == second.final_energies);
    CHECK(first.rounds_done == 2);
    CHECK(first.steps_done == 200);
    options.seed = 18;
    const SolverResult other = solve_ising(*backend, problem, options);
    CHECK(other.final_energies != first.final_energies);
  }
}

TEST_CASE("maxcut: a 2 s time limit stops a solve of minutes within 2.2 s, between evaluations") {
  // 1024 replicas of a 250-spin problem: a step is a (1024, 250) x (250, 250) GEMM,
  // milliseconds, so 100000 steps would take minutes; with one evaluation at the
  // end of the round only the look at the clock between ranges of steps can stop
  // it. Few spins keep the setup (J, its spectral radius), which the limit also
  // counts, short even on a loaded machine.
  auto backend = make_backend("cpu");
  std::mt19937 rng(44);
  const IsingProblem problem = maxcut_to_ising(random_graph(rng, 250, 0.1, false));
  SolverOptions options;
  options.method = SolverMethod::dsb;
  options.replicas = 1024;
  options.steps = 100000;
  options.evaluations = 1;
  options.rounds = 10;
  options.time_limit_s = 2.0;
  const auto start = std::chrono::steady_clock::now();
  const SolverResult result = solve_ising(*backend, problem, options);
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("2 s limit: returned after " << wall_s << " s (setup " << result.setup_seconds << " s), "
                                       << result.steps_done << " of " << options.steps << " steps");
  CHECK(result.time_limit_reached);
  CHECK(wall_s >= 2.0);
  CHECK(wall_s < 2.2);
  CHECK(result.rounds_done == 1);
  CHECK(result.steps_done > 0);
  CHECK(result.steps_done < options.steps);
  // The replicas are evaluated where the limit stopped them.
  CHECK(result.best_step == result.steps_done);
  CHECK(result.time_to_best_s <= result.seconds);
  REQUIRE(result.best_spins.size() == 250);
  CHECK(result.best_energy == ising_energy(problem, result.best_spins.data()));
}

TEST_CASE("maxcut: a time limit that is not reached leaves every method's results unchanged") {
  // With a limit the steps run in ranges with a look at the clock between them
  // (one step, then growing); without one, a range is the whole stretch between
  // two evaluations. The arithmetic must not notice the split.
  auto backend = make_backend("cpu");
  std::mt19937 rng(48);
  std::normal_distribution<double> normal(0.0, 1.0);
  IsingProblem problem;  // Gaussian couplings: GEMM sums are inexact, SA's field updates drift
  problem.spins = 90;
  for (int i = 0; i < problem.spins; ++i)
    for (int j = i + 1; j < problem.spins; ++j)
      if (rng() % 4 == 0) problem.couplings.push_back({i, j, normal(rng)});
  for (const SolverMethod method : {SolverMethod::bsb, SolverMethod::dsb, SolverMethod::sa, SolverMethod::oim}) {
    const bool sb = method == SolverMethod::bsb || method == SolverMethod::dsb;
    for (const SolverPath path : {SolverPath::gemm, SolverPath::fused_block}) {
      if (path == SolverPath::fused_block && !sb) continue;
      CAPTURE(solver_method_name(method));
      CAPTURE(solver_path_name(path));
      SolverOptions options;
      options.method = method;
      options.path = path;
      options.replicas = 24;  // > 8 per core: the CPU splits the replicas over the cores
      options.steps = 300;
      options.rounds = 2;
      options.evaluations = 3;
      options.seed = 5;
      const SolverResult unlimited = solve_ising(*backend, problem, options);
      options.time_limit_s = 1e6;
      const SolverResult limited = solve_ising(*backend, problem, options);
      CHECK_FALSE(limited.time_limit_reached);
      CHECK(limited.steps_done == unlimited.steps_done);
      CHECK(limited.final_energies == unlimited.final_energies);
      CHECK(limited.best_spins == unlimited.best_spins);
      CHECK(limited.best_round == unlimited.best_round);
      CHECK(limited.best_replica == unlimited.best_replica);
      CHECK(limited.best_step == unlimited.best_step);
    }
  }
}

TEST_CASE("maxcut: bad options are ConfigErrors and too large problems DataErrors") {
  auto backend = make_backend("cpu");
  IsingProblem problem;
  problem.spins = 4;
  problem.couplings = {{0, 1, 1.0}};
  SolverOptions options;
  options.replicas = 0;
  test::check_contains(test::thrown_message<ConfigError>([&] { solve_ising(*backend, problem, options); }),
                       {"replicas"});
  options = SolverOptions{};
  options.dt = std::nanf("");
  test::check_contains(test::thrown_message<ConfigError>([&] { solve_ising(*backend, problem, options); }), {"dt"});
  options = SolverOptions{};
  problem.spins = kMaxDenseSpins + 1;
  test::check_contains(test::thrown_message<DataError>([&] { solve_ising(*backend, problem, options); }),
                       {"too large"});
  test::check_contains(test::thrown_message<ConfigError>([&] { parse_solver_method("qaoa"); }), {"bsb, dsb, sa, oim"});
}

TEST_CASE("gset: dSB on G11 reaches within 1% of the best-known cut with 16 replicas x 1000 steps") {
  const std::string path = EQPROP_SOURCE_DIR "/../shared/gset/G11.txt";
  if (!std::filesystem::exists(path)) {
    MESSAGE("skipped: " << path << " is absent");
    return;
  }
  auto backend = make_backend("cpu");
  const Graph graph = read_gset_graph(path);
  SolverOptions options;
  options.method = SolverMethod::dsb;
  options.replicas = 16;
  options.steps = 1000;
  const SolverResult result = solve_ising(*backend, maxcut_to_ising(graph), options);
  const double cut = cut_value(graph, result.best_spins.data());
  MESSAGE("G11 dSB, 16 replicas x 1000 steps: cut " << cut << " (best known 564) in " << result.seconds << " s");
  CHECK(cut == cut_from_energy(graph, result.best_energy));
  CHECK(cut >= 0.99 * 564);
}

}  // namespace
}  // namespace eqprop
