// The G-set / rudy graph reader, the Ising couplings reader and the spin-assignment
// reader and writer (hosttools/gset_reader.h): the published G-set files with their
// reference cut vectors (../shared/gset, whose cuts the reader and the evaluator
// must reproduce exactly), and every malformed input the readers reject.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hosttools/gset_reader.h"
#include "kernels/error.h"
#include "models/ising_problem.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::check_contains;
using test::TempDir;
using test::thrown_message;

const std::string kGsetDir = EQPROP_SOURCE_DIR "/../shared/gset";

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The cut of each ../shared/gset/G*_ref_cut.txt vector, and the graph's size, from
// that folder's README (there recomputed from the source repository's values).
struct Reference {
  const char* name;
  int nodes;
  int edges;
  bool signed_weights;
  long long cut;
};
constexpr Reference kReferences[] = {
    {"G1", 800, 19176, false, 11624},  {"G2", 800, 19176, false, 11620},   {"G6", 800, 19176, true, 2178},
    {"G11", 800, 1600, true, 562},     {"G14", 800, 4694, false, 3058},    {"G22", 2000, 19990, false, 13351},
    {"G43", 1000, 9990, false, 6660},  {"G55", 5000, 12498, false, 10264}, {"G70", 10000, 9999, false, 9516},
    {"G81", 20000, 40000, true, 13878},
};

TEST_CASE("gset: the reader and the cut evaluator reproduce the reference cuts of ../shared/gset exactly") {
  if (test::skip_case_if(!std::filesystem::is_directory(kGsetDir), kGsetDir + " is absent")) return;
  int checked = 0;
  for (const Reference& reference : kReferences) {
    const std::string graph_path = kGsetDir + "/" + reference.name + ".txt";
    const std::string cut_path = kGsetDir + "/" + reference.name + "_ref_cut.txt";
    if (!std::filesystem::exists(graph_path) || !std::filesystem::exists(cut_path)) {
      MESSAGE("not in " << kGsetDir << ": " << reference.name);
      continue;
    }
    CAPTURE(reference.name);
    const Graph graph = read_gset_graph(graph_path);
    CHECK(graph.nodes == reference.nodes);
    CHECK(graph.edges.size() == std::size_t(reference.edges));
    CHECK(graph.integer_weights());
    std::size_t unit_weights = 0, negative = 0;
    for (const WeightedPair& edge : graph.edges) {
      unit_weights += edge.value == 1.0 || edge.value == -1.0;
      negative += edge.value < 0;
    }
    CHECK(unit_weights == graph.edges.size());
    CHECK((negative > 0) == reference.signed_weights);

    const std::vector<std::int8_t> spins = read_spin_assignment(cut_path, graph.nodes);
    const double cut = cut_value(graph, spins.data());
    CHECK(cut == double(reference.cut));
    // The same cut through the Ising mapping J = -w: cut = (W - E) / 2.
    const double energy = ising_energy(maxcut_to_ising(graph), spins.data());
    CHECK(cut_from_energy(graph, energy) == double(reference.cut));
    ++checked;
  }
  MESSAGE(checked << " G-set reference cuts reproduced");
  CHECK(checked > 0);
}

TEST_CASE("gset: the reader takes comments, blank lines, CRLF, tabs and real weights") {
  TempDir dir;
  const std::string path = dir.file("small.txt");
  write_text(path,
             "# a comment\r\n"
             "% another\n"
             "\n"
             "4 4 \r\n"
             "1 2 1\n"
             "  2\t3 -2.5\n"
             "\n"
             "3 4 1e-1\n"
             "4 1 +3\n");
  const Graph graph = read_gset_graph(path);
  REQUIRE(graph.nodes == 4);
  REQUIRE(graph.edges.size() == 4);
  CHECK(graph.edges[0].i == 0);
  CHECK(graph.edges[0].j == 1);
  CHECK(graph.edges[1].value == -2.5);
  CHECK(graph.edges[2].value == doctest::Approx(0.1));
  CHECK(graph.edges[3].i == 3);
  CHECK(graph.edges[3].j == 0);
  CHECK_FALSE(graph.integer_weights());
  CHECK(graph.total_weight() == doctest::Approx(1.6));
}

TEST_CASE("gset: bad graph files are DataErrors naming the file and line") {
  TempDir dir;
  struct Case {
    const char* text;
    std::vector<std::string> expected;
  };
  const Case cases[] = {
      {"", {"empty file"}},
      {"# only a comment\n", {"empty file"}},
      {"4\n1 2 1\n", {":1:", "header 'n m'"}},
      {"4 x\n", {":1:", "header 'n m'"}},
      {"4 1 7\n1 2 1\n", {":1:", "header 'n m'"}},
      {"0 0\n", {":1:", "node count"}},
      {"4 -1\n", {":1:", "pair count"}},
      {"4 2\n1 2 1\n1 5 1\n", {":3:", "node 5 is out of range 1..4"}},
      {"4 2\n1 2 1\n0 3 1\n", {":3:", "node 0 is out of range"}},
      {"4 1\n2 2 1\n", {":2:", "self loop on node 2"}},
      {"4 3\n1 2 1\n2 3 1\n", {"promises 3 pair lines", "has 2"}},
      {"4 1\n1 2 1\n2 3 1\n", {":3:", "more pair lines than the 1"}},
      {"4 1\n1 2\n", {":2:", "expected 'i j w'"}},
      {"4 1\n1 2 1 5\n", {":2:", "expected 'i j w'"}},
      {"4 1\n1 2 one\n", {":2:", "finite number", "'one'"}},
      {"4 1\n1 2 nan\n", {":2:", "finite number"}},
      {"4 1\n1.5 2 1\n", {":2:", "integer node index", "'1.5'"}},
      {"4 1\nh 2 1\n", {":2:", "integer node index", "'h'"}},  // fields are for Ising files only
  };
  int index = 0;
  for (const Case& c : cases) {
    const std::string path = dir.file("bad" + std::to_string(index++) + ".txt");
    write_text(path, c.text);
    CAPTURE(c.text);
    const std::string message = thrown_message<DataError>([&] { read_gset_graph(path); });
    check_contains(message, {path});
    for (const std::string& part : c.expected) check_contains(message, {part});
  }
  const std::string missing = dir.file("missing.txt");
  check_contains(thrown_message<DataError>([&] { read_gset_graph(missing); }), {"cannot open", missing});
  check_contains(thrown_message<DataError>([&] { read_gset_graph(dir.path().string()); }), {"is a directory"});
}

TEST_CASE("ising: the couplings reader takes field lines, adds duplicates and rejects bad lines") {
  TempDir dir;
  const std::string path = dir.file("ising.txt");
  write_text(path,
             "# n m, then m couplings J_ij, then fields h_i\n"
             "3 3\n"
             "1 2 0.5\n"
             "h 3 -1\n"
             "2 3 -1\n"
             "1 2 0.25\n"
             "h 1 2\n"
             "H 3 0.5\n");
  const IsingProblem problem = read_ising_couplings(path);
  CHECK(problem.spins == 3);
  REQUIRE(problem.couplings.size() == 3);
  REQUIRE(problem.fields.size() == 3);
  CHECK(problem.fields[0] == 2.0);
  CHECK(problem.fields[1] == 0.0);
  CHECK(problem.fields[2] == -0.5);
  // E = -(0.5 + 0.25) s1 s2 + s2 s3 - 2 s1 + 0.5 s3
  const std::int8_t spins[3] = {1, -1, 1};
  CHECK(ising_energy(problem, spins) == doctest::Approx(0.75 - 1.0 - 2.0 + 0.5));
  const std::vector<float> dense = dense_couplings(problem, 16);
  CHECK(dense[0 * 3 + 1] == 0.75f);
  CHECK(dense[1 * 3 + 0] == 0.75f);
  CHECK(dense[1 * 3 + 2] == -1.0f);
  CHECK(dense[0] == 0.0f);

  write_text(path, "3 1\n1 2 1\nh 4 1\n");
  check_contains(thrown_message<DataError>([&] { read_ising_couplings(path); }),
                 {path + ":3:", "spin 4 is out of range 1..3"});
  write_text(path, "3 1\n1 2 1\nh 1\n");
  check_contains(thrown_message<DataError>([&] { read_ising_couplings(path); }), {":3:", "'h i h_i'"});
  write_text(path, "3 1\nh 1 1\n");
  check_contains(thrown_message<DataError>([&] { read_ising_couplings(path); }), {"promises 1 pair lines", "has 0"});
}

TEST_CASE("gset: spin assignments are written one per line and read back, bad ones are errors") {
  TempDir dir;
  const std::string path = dir.file("spins.txt");
  const std::vector<std::int8_t> spins = {1, -1, -1, 1, 1};
  write_spin_assignment(path, spins);
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "1\n-1\n-1\n1\n1\n");
  CHECK(read_spin_assignment(path, 5) == spins);

  write_text(path, "1,-1, +1\n-1");
  CHECK(read_spin_assignment(path, 4) == std::vector<std::int8_t>{1, -1, 1, -1});
  check_contains(thrown_message<DataError>([&] { read_spin_assignment(path, 5); }), {"expected 5 spins, found 4"});
  write_text(path, "1,-1,0\n");
  check_contains(thrown_message<DataError>([&] { read_spin_assignment(path, 3); }), {":1:", "got '0'"});
}

}  // namespace
}  // namespace eqprop
