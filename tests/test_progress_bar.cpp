// The progress bar under a pseudo-terminal of 60, 80 and 200 columns: every redraw
// fits the terminal (a wider line wraps, and each redraw then scrolls a new line).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <pty.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hosttools/progress_bar.h"

namespace eqprop {
namespace {

// What the bar wrote: the text of each redraw, control codes removed.
std::vector<std::string> drawn_lines(const std::string& output) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while ((at = output.find("\r\033[K", at)) != std::string::npos) {
    at += 4;
    const std::size_t end = output.find('\r', at);
    const std::string line = output.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// Draws a bar with a long status on a pseudo-terminal `columns` wide.
std::vector<std::string> draw_on_terminal(int columns, const std::string& status) {
  int terminal = -1, program = -1;
  winsize size{};
  size.ws_col = static_cast<unsigned short>(columns);
  size.ws_row = 24;
  REQUIRE(openpty(&terminal, &program, nullptr, nullptr, &size) == 0);
  std::FILE* stream = fdopen(program, "w");
  REQUIRE(stream != nullptr);
  {
    ProgressBar bar(stream);
    CHECK(bar.active());  // a terminal
    bar.start("epoch 12/30", 469, 128);
    bar.update(1, status);
    bar.update(469, status);
    bar.finish();
  }
  fcntl(terminal, F_SETFL, fcntl(terminal, F_GETFL) | O_NONBLOCK);
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = read(terminal, buffer, sizeof buffer)) > 0;) output.append(buffer, n);
  std::fclose(stream);
  close(terminal);
  return drawn_lines(output);
}

}  // namespace

TEST_CASE("progress bar: every redraw fits the terminal, at 60, 80 and 200 columns") {
  const std::string status = "loss 0.0123  acc 87.50%  and a status long enough to overflow a narrow terminal";
  for (int columns : {60, 80, 200}) {
    INFO(columns << " columns");
    const std::vector<std::string> lines = draw_on_terminal(columns, status);
    REQUIRE(lines.size() == 2);
    for (const std::string& line : lines) {
      INFO(line);
      CHECK(static_cast<int>(line.size()) <= columns - 1);
      CHECK(line.rfind("epoch 12/30 [", 0) == 0);
    }
    CHECK(lines.back().find("469/469") != std::string::npos);
    CHECK(lines.back().find("[########") != std::string::npos);
    // Wide enough, nothing is cut.
    if (columns == 200) CHECK(lines.back().find(status) != std::string::npos);
  }
}

TEST_CASE("progress bar: the width comes from the terminal, else COLUMNS, else 80") {
  int pipe_ends[2];
  REQUIRE(pipe(pipe_ends) == 0);
  const char* saved = std::getenv("COLUMNS");
  const std::string before = saved ? saved : "";
  setenv("COLUMNS", "132", 1);
  CHECK(terminal_columns(pipe_ends[1]) == 132);
  unsetenv("COLUMNS");
  CHECK(terminal_columns(pipe_ends[1]) == 80);
  if (saved) setenv("COLUMNS", before.c_str(), 1);
  close(pipe_ends[0]);
  close(pipe_ends[1]);

  // Not a terminal: silent, so logs stay readable.
  std::FILE* file = std::tmpfile();
  ProgressBar quiet(file);
  CHECK_FALSE(quiet.active());
  std::fclose(file);
}

TEST_CASE("progress bar: the line is cut, never wrapped, even narrower than its label") {
  ProgressBar bar(stderr, /*force=*/true);
  bar.start("evaluating the test split", 10, 100);
  for (int columns : {1, 10, 30, 80}) {
    const std::string line = bar.line(5, "acc 50.00%", 1.0, columns);
    CHECK(static_cast<int>(line.size()) <= std::max(1, columns - 1));
  }
  CHECK(bar.line(5, "acc 50.00%", 1.0, 200).find("5/10  500 samples/s  ETA 00:01  acc 50.00%") != std::string::npos);
}

}  // namespace eqprop
