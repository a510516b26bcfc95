// A progress line for long work: on a terminal, a bar redrawn in place with
// throughput and ETA, never wider than the terminal (a wider line would wrap and
// every redraw would scroll); elsewhere (logs, CI) silent, so files stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace eqprop {

class ProgressBar {
 public:
  // Draws on `stream` only if it is a terminal (or `force`).
  explicit ProgressBar(std::FILE* stream, bool force = false);
  void start(const std::string& label, std::int64_t total, std::int64_t items_per_step);
  // `done` steps finished; `status` is appended (e.g. running loss), cut where the
  // terminal ends.
  void update(std::int64_t done, const std::string& status);
  // Erases the bar so the next line starts clean.
  void finish();
  bool active() const { return enabled_; }

  // The text update() draws (no control codes), at most columns - 1 characters:
  // the last column stays free, as some terminals wrap on writing it.
  std::string line(std::int64_t done, const std::string& status, double elapsed_seconds, int columns) const;

 private:
  std::FILE* stream_;
  bool enabled_;
  std::string label_;
  std::int64_t total_ = 0, items_per_step_ = 1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// The width of the terminal on `fd` (TIOCGWINSZ), else $COLUMNS, else 80.
int terminal_columns(int fd);

// "1:02:03" or "02:03".
std::string format_duration(double seconds);

}  // namespace eqprop
