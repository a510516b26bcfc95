#include "hosttools/progress_bar.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace eqprop {

std::string format_duration(double seconds) {
  const long total = std::lround(std::max(0.0, seconds));
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
  } else {
    std::snprintf(text, sizeof text, "%02ld:%02ld", total / 60, total % 60);
  }
  return text;
}

int terminal_columns(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    const int value = std::atoi(columns);
    if (value > 0) return value;
  }
  return 80;
}

ProgressBar::ProgressBar(std::FILE* stream, bool force)
    : stream_(stream), enabled_(force || isatty(fileno(stream))) {}

void ProgressBar::start(const std::string& label, std::int64_t total, std::int64_t items_per_step) {
  label_ = label;
  total_ = total;
  items_per_step_ = items_per_step;
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::seconds(1);
}

std::string ProgressBar::line(std::int64_t done, const std::string& status, double elapsed_seconds,
                              int columns) const {
  const double rate = elapsed_seconds > 0 ? done * items_per_step_ / elapsed_seconds : 0;
  const double eta = done > 0 ? elapsed_seconds * (total_ - done) / done : 0;
  char counts[96];
  std::snprintf(counts, sizeof counts, " %lld/%lld  %.0f samples/s  ETA %s", static_cast<long long>(done),
                static_cast<long long>(total_), rate, format_duration(eta).c_str());
  const std::string tail = std::string(counts) + (status.empty() ? "" : "  " + status);
  // The bar takes what the text leaves, between 8 and 24 cells; the status is what
  // gets cut when even that does not fit.
  const int usable = std::max(1, columns - 1);
  const int text = static_cast<int>(label_.size() + tail.size()) + 3;  // " [" and "]"
  const int width = std::clamp(usable - text, 8, 24);
  const int filled = total_ > 0 ? static_cast<int>(width * std::min(done, total_) / total_) : width;
  std::string drawn = label_ + " [" + std::string(filled, '#') + std::string(width - filled, '.') + "]" + tail;
  if (static_cast<int>(drawn.size()) > usable) drawn.resize(usable);
  return drawn;
}

void ProgressBar::update(std::int64_t done, const std::string& status) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  // Redrawing at most 10 times a second keeps the terminal cheap.
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::string drawn = line(done, status, elapsed, terminal_columns(fileno(stream_)));
  std::fprintf(stream_, "\r\033[K%s", drawn.c_str());
  std::fflush(stream_);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  std::fprintf(stream_, "\r\033[K");
  std::fflush(stream_);
}

}  // namespace eqprop
