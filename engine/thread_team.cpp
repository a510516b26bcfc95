#include "engine/thread_team.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

namespace eqprop {

ThreadTeamTuner::ThreadTeamTuner(int max_threads, int pinned, ThreadTeamPolicy policy)
    : policy_(policy), max_(std::max(1, max_threads)), pinned_(pinned > 0), size_(pinned > 0 ? pinned : max_) {
  chosen_ = size_;
  reprobe_interval_ = policy_.first_reprobe;
  start(size_);
}

void ThreadTeamTuner::start(int size) {
  size_ = size;
  window_.clear();
  settling_ = policy_.settle_steps;
  phase_ = settling_ > 0 ? Phase::settle : Phase::measure;
}

void ThreadTeamTuner::record(double step_seconds) {
  ++steps_by_size_[size_];
  if (pinned_) return;
  if (mode_ == Mode::steady) ++steps_since_probe_;
  if (phase_ == Phase::settle) {
    if (--settling_ <= 0) phase_ = Phase::measure;
    return;
  }
  window_.push_back(step_seconds);
  if (static_cast<int>(window_.size()) < std::max(1, policy_.window_steps)) return;
  std::sort(window_.begin(), window_.end());
  const double median = window_[window_.size() / 2];
  window_.clear();
  measured(median);
}

void ThreadTeamTuner::measured(double median) {
  switch (mode_) {
    case Mode::reference:
      begin_round(median, 0);
      return;
    case Mode::probe:
      round_times_[size_] = median;
      if (!probe_next()) decide();
      return;
    case Mode::steady: {
      const bool shifted = std::fabs(median - chosen_time_) > policy_.shift * chosen_time_;
      if (shifted || steps_since_probe_ >= reprobe_interval_) begin_round(median, 0);
      return;
    }
  }
}

void ThreadTeamTuner::begin_round(double chosen_median, int came_from) {
  chosen_time_ = chosen_median;
  round_times_ = {{chosen_, chosen_median}};
  candidates_.clear();
  for (const int neighbour : {chosen_ - 1, chosen_ + 1})
    if (neighbour >= 1 && neighbour <= max_ && neighbour != came_from) candidates_.push_back(neighbour);
  if (!probe_next()) settle_on_chosen();
}

bool ThreadTeamTuner::probe_next() {
  if (candidates_.empty()) return false;
  mode_ = Mode::probe;
  const int next = candidates_.front();
  candidates_.erase(candidates_.begin());
  start(next);
  return true;
}

void ThreadTeamTuner::decide() {
  int best = chosen_;
  double best_time = chosen_time_ * (1.0 - policy_.margin);
  for (const auto& [size, time] : round_times_)
    if (size != chosen_ && time < best_time) best = size, best_time = time;
  if (best == chosen_) {
    // Confirmed: probe less often, up to the policy's period.
    reprobe_interval_ = std::min(2 * reprobe_interval_, std::int64_t(policy_.reprobe_every));
    return settle_on_chosen();
  }
  // Changed: confirm soon (the round may have been timed through a burst of noise).
  reprobe_interval_ = policy_.first_reprobe;
  // Taken: go on in the same direction (4 -> 3 may lead to 2) from the new size,
  // whose time this round measured.
  const int came_from = chosen_;
  chosen_ = best;
  const double time = round_times_[best];
  const int onward = best + (best - came_from);
  if (onward >= 1 && onward <= max_) {
    chosen_time_ = time;
    round_times_ = {{chosen_, time}};
    candidates_ = {onward};
    probe_next();
    return;
  }
  chosen_time_ = time;
  settle_on_chosen();
}

void ThreadTeamTuner::settle_on_chosen() {
  mode_ = Mode::steady;
  steps_since_probe_ = 0;
  if (size_ != chosen_) {
    start(chosen_);
  } else {
    window_.clear();
  }
}

nlohmann::json ThreadTeamTuner::to_json() const {
  nlohmann::json steps = nlohmann::json::object();
  for (const auto& [size, count] : steps_by_size_) steps[std::to_string(size)] = count;
  return {{"mode", pinned_ ? "pinned" : "auto"}, {"max", max_}, {"final", chosen_}, {"steps_by_size", steps}};
}

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ThreadTeam::ThreadTeam(bool active, int threads)
    : active_(active), max_threads_(omp_get_max_threads()), tuner_(max_threads_, threads) {}

ThreadTeam::~ThreadTeam() {
  if (active_) omp_set_num_threads(max_threads_);
}

void ThreadTeam::begin_step() {
  if (!active_) return;
  if (omp_get_max_threads() != tuner_.size()) omp_set_num_threads(tuner_.size());
  step_start_ = now_seconds();
}

void ThreadTeam::end_step() {
  if (!active_) return;
  tuner_.record(now_seconds() - step_start_);
}

void ThreadTeam::hold(const std::string& why) {
  if (!active_ || tuner_.pinned() || !held_because_.empty()) return;
  tuner_.hold();
  held_because_ = why;
}

nlohmann::json ThreadTeam::to_json() const {
  if (!active_) return nullptr;
  nlohmann::json result = tuner_.to_json();
  if (!held_because_.empty()) {
    result["mode"] = "held";
    result["held_because"] = held_because_;
  }
  return result;
}

}  // namespace eqprop
