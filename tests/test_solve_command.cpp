// `eqprop solve` driven in-process through run_cli: the JSON line and the --out
// assignment of a MAX-CUT and of an Ising run, a run stopped by --time-limit,
// usage errors (exit 2) and data errors (exit 1) with one clear line.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hosttools/cli.h"
#include "hosttools/gset_reader.h"
#include "models/ising_problem.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::check_contains;
using test::TempDir;

struct Result {
  int code = -1;
  std::string out, err;
};

Result solve(std::vector<std::string> args) {
  args.insert(args.begin(), "solve");
  std::ostringstream out, err;
  Result result;
  result.code = run_cli(args, out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

void check_code(const Result& result, int expected) {
  CHECK_MESSAGE(result.code == expected, "exit " << result.code << "\nstdout:\n" << result.out << "\nstderr:\n"
                                                 << result.err);
}

// A 5-cycle plus a chord, weights 1 (the maximum cut is 5).
const char* kGraph =
    "5 6\n"
    "1 2 1\n2 3 1\n3 4 1\n4 5 1\n5 1 1\n1 3 1\n";

TEST_CASE("maxcut: eqprop solve prints one JSON line and writes the best assignment") {
  TempDir dir;
  const std::string graph_path = dir.file("graph.txt"), out_path = dir.file("cut.txt");
  std::ofstream(graph_path) << kGraph;
  for (const std::string method : {"bsb", "dsb", "sa"}) {
    CAPTURE(method);
    const Result result = solve({"--problem", "maxcut", "--graph", graph_path, "--method", method, "--replicas", "8",
                                 "--steps", "200", "--seed", "5", "--device", "cpu", "--out", out_path});
    check_code(result, 0);
    CHECK(result.err.empty());
    const nlohmann::json line = nlohmann::json::parse(result.out);
    for (const char* key : {"problem", "n", "edges", "method", "replicas", "steps", "best_cut", "best_energy",
                            "time_to_best_s", "seconds", "spin_updates_per_s", "backend"})
      CHECK_MESSAGE(line.contains(key), "missing " << key << " in " << result.out);
    CHECK(line["problem"] == "maxcut");
    CHECK(line["n"] == 5);
    CHECK(line["edges"] == 6);
    CHECK(line["method"] == method);
    CHECK(line["best_cut"] == 5);
    CHECK(line["best_energy"] == -4);  // W - 2 cut = 6 - 10
    CHECK(line["backend"] == "cpu");
    CHECK(line["spin_updates_per_s"].get<double>() > 0);
    // The written assignment has that cut.
    const Graph graph = read_gset_graph(graph_path);
    const std::vector<std::int8_t> spins = read_spin_assignment(out_path, 5);
    CHECK(cut_value(graph, spins.data()) == 5);
  }
}

TEST_CASE("maxcut: eqprop solve reports the SB path it took, and --path overrides the automatic choice") {
  TempDir dir;
  const std::string graph_path = dir.file("graph.txt");
  std::ofstream(graph_path) << kGraph;
  struct Case {
    std::vector<std::string> path_args;
    std::string expected;
  };
  // The CPU backend's automatic choice is the GEMM path (engine/maxcut_solver.cpp).
  const Case cases[] = {{{}, "gemm"}, {{"--path", "auto"}, "gemm"}, {{"--path", "fused"}, "fused_block"},
                        {{"--path", "gemm"}, "gemm"}};
  for (const std::string method : {"bsb", "dsb"})
    for (const Case& c : cases) {
      std::vector<std::string> args = {"--graph", graph_path, "--method", method, "--replicas", "8",
                                       "--steps", "200", "--device", "cpu"};
      args.insert(args.end(), c.path_args.begin(), c.path_args.end());
      const Result result = solve(args);
      CAPTURE(method);
      CAPTURE(result.out);
      check_code(result, 0);
      const nlohmann::json line = nlohmann::json::parse(result.out);
      CHECK(line["path"] == c.expected);
      CHECK(line["best_cut"] == 5);
    }
}

TEST_CASE("maxcut: eqprop solve --time-limit stops a long run and says so") {
  TempDir dir;
  const std::string graph_path = dir.file("ring.txt");
  {
    // A 300-node ring with chords: a step of 32 replicas takes a few hundred
    // microseconds, a million steps minutes.
    std::ofstream graph(graph_path);
    const int nodes = 300;
    graph << nodes << " " << 2 * nodes << "\n";
    for (int i = 0; i < nodes; ++i)
      graph << i + 1 << " " << (i + 1) % nodes + 1 << " 1\n" << i + 1 << " " << (i + 37) % nodes + 1 << " 1\n";
  }
  const auto start = std::chrono::steady_clock::now();
  const Result result = solve({"--graph", graph_path, "--method", "dsb", "--replicas", "32", "--steps", "1000000",
                               "--time-limit", "0.5", "--device", "cpu"});
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  check_code(result, 0);
  const nlohmann::json line = nlohmann::json::parse(result.out);
  CHECK(line["time_limit_reached"] == true);
  CHECK(line["steps_done"].get<std::int64_t>() < 1000000);
  CHECK(line["best_cut"].get<double>() > 0);
  CHECK(wall_s < 3.0);  // not minutes (the library's test bounds the overrun itself)
}

TEST_CASE("ising: eqprop solve --problem ising reads couplings and fields") {
  TempDir dir;
  const std::string path = dir.file("ising.txt");
  // A ferromagnetic pair pulled down by a field on spin 1: ground state (-1, -1), E = -1 - 2.
  std::ofstream(path) << "2 1\n1 2 1\nh 1 -2\n";
  const Result result = solve({"--problem", "ising", "--couplings", path, "--method", "sa", "--replicas", "4",
                               "--steps", "50", "--device", "cpu"});
  check_code(result, 0);
  const nlohmann::json line = nlohmann::json::parse(result.out);
  CHECK(line["problem"] == "ising");
  CHECK(line["best_energy"] == -3);
  CHECK(line["fields"] == 1);
  CHECK_FALSE(line.contains("best_cut"));
}

TEST_CASE("maxcut: eqprop solve usage errors exit 2 and data errors exit 1, with one line") {
  TempDir dir;
  const std::string graph_path = dir.file("graph.txt");
  std::ofstream(graph_path) << kGraph;
  struct Case {
    std::vector<std::string> args;
    int code;
    std::vector<std::string> expected;
  };
  const std::string bad_path = dir.file("bad.txt");
  std::ofstream(bad_path) << "3 1\n1 4 1\n";
  const Case cases[] = {
      {{}, 2, {"--graph FILE"}},
      {{"--graph", graph_path, "--method", "qaoa"}, 2, {"--method", "'qaoa'"}},
      {{"--graph", graph_path, "--replicas", "0"}, 2, {"--replicas 0"}},
      {{"--graph", graph_path, "--steps", "ten"}, 2, {"--steps ten"}},
      {{"--graph", graph_path, "--time-limit", "-1"}, 2, {"--time-limit -1"}},
      {{"--graph", graph_path, "--seed", "-3"}, 2, {"--seed -3"}},
      {{"--graph", graph_path, "--bogus", "1"}, 2, {"unknown option '--bogus'"}},
      {{"--graph", graph_path, "--steps"}, 2, {"--steps needs a value"}},
      {{"--graph", graph_path, "--steps", "5", "--steps", "6"}, 2, {"twice"}},
      {{"--problem", "tsp", "--graph", graph_path}, 2, {"maxcut or ising"}},
      {{"--problem", "ising", "--graph", graph_path}, 2, {"--graph is for --problem maxcut"}},
      {{"--graph", graph_path, "--device", "tpu"}, 2, {"--device"}},
      {{"--graph", graph_path, "--path", "tiled"}, 2, {"--path", "'tiled'", "auto, fused, gemm"}},
      {{"--graph", graph_path, "--method", "sa", "--path", "fused"}, 2, {"bsb and dsb only"}},
      {{"--graph", dir.file("missing.txt")}, 1, {"cannot open", "missing.txt"}},
      {{"--graph", bad_path}, 1, {bad_path + ":2:", "node 4 is out of range 1..3"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    if (std::find(c.args.begin(), c.args.end(), "--device") == c.args.end()) args.insert(args.begin(), {"--device", "cpu"});
    const Result result = solve(args);
    CAPTURE(result.err);
    check_code(result, c.code);
    CHECK(result.out.empty());
    CHECK(result.err.rfind("eqprop: ", 0) == 0);
    CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);
    for (const std::string& part : c.expected) check_contains(result.err, {part});
  }
}

}  // namespace
}  // namespace eqprop
