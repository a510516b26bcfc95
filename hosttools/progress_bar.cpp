#include "hosttools/progress_bar.h"

#include <unistd.h>

#include <cmath>

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

ProgressBar::ProgressBar(std::FILE* stream, bool force)
    : stream_(stream), enabled_(force || isatty(fileno(stream))) {}

void ProgressBar::start(const std::string& label, std::int64_t total, std::int64_t items_per_step) {
  label_ = label;
  total_ = total;
  items_per_step_ = items_per_step;
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::seconds(1);
}

void ProgressBar::update(std::int64_t done, const std::string& status) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  // Redrawing at most 10 times a second keeps the terminal cheap.
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? done * items_per_step_ / elapsed : 0;
  const double eta = done > 0 ? elapsed * (total_ - done) / done : 0;
  constexpr int kWidth = 24;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
  std::string bar(filled, '#');
  bar += std::string(kWidth - filled, '.');
  std::fprintf(stream_, "\r\033[K%s [%s] %lld/%lld  %.0f samples/s  ETA %s  %s", label_.c_str(), bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), rate,
               format_duration(eta).c_str(), status.c_str());
  std::fflush(stream_);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  std::fprintf(stream_, "\r\033[K");
  std::fflush(stream_);
}

}  // namespace eqprop
