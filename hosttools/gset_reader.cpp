#include "hosttools/gset_reader.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/atomic_file.h"
#include "models/json_limits.h"
#include "engine/maxcut_solver.h"
#include "hosttools/input_file.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

// The whole file; DataError naming it when it cannot be read.
std::string slurp(const std::string& path) {
  refuse_special_file(path, "a text file");
  std::string bytes;
  bool opened = false;
  int error = 0;
  if (!read_whole_file(path, bytes, opened, error))
    throw DataError(std::string(opened ? "cannot read " : "cannot open ") + path + ": " + std::strerror(error));
  return bytes;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Splits a line into at most kMax tokens; `count` may exceed kMax (then the extra
// tokens are not stored).
struct Tokens {
  static constexpr int kMax = 4;
  std::string_view token[kMax];
  int count = 0;
};

Tokens split(std::string_view line) {
  Tokens tokens;
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && is_space(line[at])) ++at;
    if (at == line.size()) break;
    const std::size_t start = at;
    while (at < line.size() && !is_space(line[at])) ++at;
    if (tokens.count < Tokens::kMax) tokens.token[tokens.count] = line.substr(start, at - start);
    ++tokens.count;
  }
  return tokens;
}

bool parse_integer(std::string_view text, long long& value) {
  if (text.empty() || text.size() > 30) return false;
  char buffer[32];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  char* end = nullptr;
  errno = 0;
  value = std::strtoll(buffer, &end, 10);
  return errno == 0 && end == buffer + text.size();
}

bool parse_real(std::string_view text, double& value) {
  if (text.empty() || text.size() > 60) return false;
  char buffer[64];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  char* end = nullptr;
  value = std::strtod(buffer, &end);
  return end == buffer + text.size() && std::isfinite(value);
}

// A line-by-line cursor over a text file that skips blank and comment lines and
// knows the current line's number for error messages.
class LineCursor {
 public:
  explicit LineCursor(const std::string& path) : path_(path), text_(slurp(path)) {}

  // The next line with content, or false at the end of the file.
  bool next(std::string_view& line) {
    while (at_ < text_.size()) {
      const std::size_t end = text_.find('\n', at_);
      const std::size_t stop = end == std::string::npos ? text_.size() : end;
      line = std::string_view(text_).substr(at_, stop - at_);
      at_ = stop + 1;
      ++line_number_;
      std::size_t first = 0;
      while (first < line.size() && is_space(line[first])) ++first;
      if (first == line.size() || line[first] == '#' || line[first] == '%') continue;
      return true;
    }
    return false;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(path_ + ":" + std::to_string(line_number_) + ": " + what);
  }
  int line_number() const { return line_number_; }
  const std::string& path() const { return path_; }
  std::size_t bytes_left() const { return at_ < text_.size() ? text_.size() - at_ : 0; }

 private:
  std::string path_;
  std::string text_;
  std::size_t at_ = 0;
  int line_number_ = 0;
};

// A line as a message shows it: printable (a binary file's bytes become \xNN, so
// they cannot drive the terminal) and short.
std::string quoted(std::string_view line) {
  while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
  return "'" + excerpt(line, 80) + "'";
}

// The shortest pair line, "1 2 0" and its newline: what bounds the pairs a file can
// hold, whatever its header promises.
constexpr std::size_t kShortestPairLine = 6;

// The header `n m`.
void read_header(LineCursor& cursor, const char* node_word, int& nodes, long long& pairs) {
  std::string_view line;
  if (!cursor.next(line)) throw DataError(cursor.path() + ": empty file (expected the header 'n m')");
  const Tokens tokens = split(line);
  long long n = 0, m = 0;
  if (tokens.count != 2 || !parse_integer(tokens.token[0], n) || !parse_integer(tokens.token[1], m))
    cursor.fail(std::string("expected the header 'n m' (") + node_word + " and pair counts, two integers), got " +
                quoted(line));
  if (n < 1 || n > (1LL << 30)) cursor.fail("the " + std::string(node_word) + " count must be in [1, 2^30], got " + std::to_string(n));
  if (m < 0 || m > (1LL << 40)) cursor.fail("the pair count must be in [0, 2^40], got " + std::to_string(m));
  nodes = static_cast<int>(n);
  pairs = m;
}

// A node (spin) index in [1, n], returned 0-based.
std::int32_t read_node(LineCursor& cursor, std::string_view token, int nodes, const char* node_word,
                       std::string_view line) {
  long long value = 0;
  if (!parse_integer(token, value))
    cursor.fail(std::string("expected an integer ") + node_word + " index, got '" + excerpt(token, 40) + "' in " +
                quoted(line));
  if (value < 1 || value > nodes)
    cursor.fail(std::string(node_word) + " " + std::to_string(value) + " is out of range 1.." + std::to_string(nodes));
  return static_cast<std::int32_t>(value - 1);
}

// `i j value` lines (and, for Ising files, `h i value` lines).
struct PairFile {
  int nodes = 0;
  std::vector<WeightedPair> pairs;
  std::vector<double> fields;  // empty unless an `h` line appeared
};

PairFile read_pair_file(const std::string& path, bool allow_fields) {
  const char* node_word = allow_fields ? "spin" : "node";
  LineCursor cursor(path);
  PairFile file;
  long long expected = 0;
  read_header(cursor, node_word, file.nodes, expected);
  // The fields are a dense (n) vector: an Ising file's n is held to the solvers'
  // limit before it sizes anything (a 20-byte "1073741824 0 / h 1 1" would take 8 GiB).
  if (allow_fields && file.nodes > kMaxDenseSpins)
    cursor.fail("the spin count " + std::to_string(file.nodes) + " is above " + std::to_string(kMaxDenseSpins) +
                ", the most the solvers take");
  // Reserve for the pair lines the file can hold, not for the header's m.
  const std::size_t can_hold = cursor.bytes_left() / kShortestPairLine + 1;
  file.pairs.reserve(std::min(static_cast<std::size_t>(expected), can_hold));
  const char* layout = allow_fields ? "'i j J_ij' or 'h i h_i'" : "'i j w'";
  std::string_view line;
  while (cursor.next(line)) {
    const Tokens tokens = split(line);
    if (tokens.count != 3) cursor.fail(std::string("expected ") + layout + ", got " + quoted(line));
    double value = 0.0;
    if (!parse_real(tokens.token[2], value))
      cursor.fail("expected a finite number as the third value, got '" + excerpt(tokens.token[2], 40) + "'");
    if (allow_fields && (tokens.token[0] == "h" || tokens.token[0] == "H")) {
      const std::int32_t i = read_node(cursor, tokens.token[1], file.nodes, node_word, line);
      if (file.fields.empty()) file.fields.assign(static_cast<std::size_t>(file.nodes), 0.0);
      file.fields[static_cast<std::size_t>(i)] += value;
      continue;
    }
    const std::int32_t i = read_node(cursor, tokens.token[0], file.nodes, node_word, line);
    const std::int32_t j = read_node(cursor, tokens.token[1], file.nodes, node_word, line);
    if (i == j)
      cursor.fail("self loop on " + std::string(node_word) + " " + std::to_string(i + 1) +
                  " (not allowed: it cannot be cut and only shifts the energy by a constant)");
    if (static_cast<long long>(file.pairs.size()) == expected)
      cursor.fail("more pair lines than the " + std::to_string(expected) + " the header 'n m' promises");
    file.pairs.push_back({i, j, value});
  }
  if (static_cast<long long>(file.pairs.size()) != expected)
    throw DataError(path + ": the header 'n m' promises " + std::to_string(expected) + " pair lines, the file has " +
                    std::to_string(file.pairs.size()) + " (truncated?)");
  return file;
}

}  // namespace

Graph read_gset_graph(const std::string& path) {
  PairFile file = read_pair_file(path, /*allow_fields=*/false);
  Graph graph;
  graph.nodes = file.nodes;
  graph.edges = std::move(file.pairs);
  return graph;
}

IsingProblem read_ising_couplings(const std::string& path) {
  PairFile file = read_pair_file(path, /*allow_fields=*/true);
  IsingProblem problem;
  problem.spins = file.nodes;
  problem.couplings = std::move(file.pairs);
  problem.fields = std::move(file.fields);
  return problem;
}

std::vector<std::int8_t> read_spin_assignment(const std::string& path, int spins) {
  LineCursor cursor(path);
  std::vector<std::int8_t> values;
  values.reserve(static_cast<std::size_t>(spins));
  std::string_view line;
  while (cursor.next(line)) {
    std::size_t at = 0;
    while (at < line.size()) {
      while (at < line.size() && (is_space(line[at]) || line[at] == ',')) ++at;
      if (at == line.size()) break;
      const std::size_t start = at;
      while (at < line.size() && !is_space(line[at]) && line[at] != ',') ++at;
      const std::string_view token = line.substr(start, at - start);
      if (token == "1" || token == "+1") {
        values.push_back(1);
      } else if (token == "-1") {
        values.push_back(-1);
      } else {
        cursor.fail("expected a spin 1 or -1, got '" + excerpt(token, 40) + "'");
      }
    }
  }
  if (static_cast<int>(values.size()) != spins)
    throw DataError(path + ": expected " + std::to_string(spins) + " spins, found " + std::to_string(values.size()));
  return values;
}

void write_spin_assignment(const std::string& path, const std::vector<std::int8_t>& spins) {
  std::string text;
  text.reserve(spins.size() * 3);
  for (std::int8_t s : spins) text += s > 0 ? "1\n" : "-1\n";
  write_file_atomically(path, text);
}

}  // namespace eqprop
