// The size of the OpenMP team that runs the CPU backend's training steps, fitted to
// the cores the process actually gets. On a machine whose cores are shared, the
// team's threads outnumber the free cores and every parallel region waits for its
// slowest, descheduled thread: on 2 cores with one of them busy, one thread steps
// faster than two (perf/busy_core.sh, README "Threads on shared cores"). So the
// trainer times its steps and a ThreadTeamTuner, consulted between steps, now and
// then tries a neighbouring size (one fewer, one more up to the maximum) and keeps
// the faster. Results do not depend on the size (every reduction is in a fixed
// order, tests/test_thread_count_results.cpp), so switching is safe mid-run.
//
// The tuner is a pure decision rule over the step times it is given, so tests drive
// it with a fake clock; ThreadTeam applies its choice to OpenMP.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace eqprop {

// Policy constants as data. The evidence (perf/busy_core.sh, the default dense
// config on 2 cores): a step is 3-5 ms and its time varies by a few percent from
// step to step, a busy neighbour moves it by 50%, and the two team sizes differ by
// 7% (busy: 1 thread 4.65 ms, 2 threads 4.98 ms) to 50% (idle: 3.17 vs 4.68 ms).
struct ThreadTeamPolicy {
  // Steps timed per measurement of a size; their median is its time (one slow
  // step, a page fault or a preemption, does not decide).
  int window_steps = 4;
  // Steps not timed after the size changes: the first parallel regions at a new
  // size start threads and warm their caches.
  int settle_steps = 1;
  // Steps at the chosen size between probes: first_reprobe after a change (a round
  // timed through a burst of noise, e.g. a busy start-up, is soon corrected),
  // doubling while the choice stands up to reprobe_every. A probe costs window +
  // settle steps at a size that may be 1.5x slower, about 3% of the time at 128,
  // and finds a machine that became idle (whose one-thread step time does not
  // change) within a second or two.
  int first_reprobe = 16;
  int reprobe_every = 128;
  // A measured window this much slower or faster than the chosen size's time
  // starts a probe at once: a neighbour started or stopped.
  double shift = 0.25;
  // A neighbour is taken when it is this much faster: below the 7% gain that one
  // thread brings on a busy core, above the steps' usual jitter.
  double margin = 0.03;
};

class ThreadTeamTuner {
 public:
  // max_threads: the largest team (OMP_NUM_THREADS or the default); pinned > 0:
  // always that size, no probing (training.threads = N).
  ThreadTeamTuner(int max_threads, int pinned, ThreadTeamPolicy policy = {});

  // The team size for the next step.
  int size() const { return size_; }
  // The time of the step just run at size().
  void record(double step_seconds);
  // From now on size() stays what it is now: no more probes (ThreadTeam::hold).
  void hold() {
    pinned_ = true;
    chosen_ = size_;
  }

  bool pinned() const { return pinned_; }
  int max_threads() const { return max_; }
  // Steps run at each size so far.
  const std::map<int, std::int64_t>& steps_by_size() const { return steps_by_size_; }
  // {"mode": "auto" | "pinned", "max", "final", "steps_by_size": {"1": n, ...}}.
  nlohmann::json to_json() const;

 private:
  enum class Phase { settle, measure };  // of the timing at size_
  // reference: timing the chosen size to start a round; probe: timing a
  // neighbour; steady: running the chosen size, watching for a shift.
  enum class Mode { reference, probe, steady };
  // Starts timing `size`, after its settle steps.
  void start(int size);
  // The median of a full window at size_.
  void measured(double median);
  // A probe round around chosen_ (whose time is chosen_median), skipping came_from.
  void begin_round(double chosen_median, int came_from);
  // Starts timing the round's next candidate; false when none is left.
  bool probe_next();
  // Picks the round's fastest size.
  void decide();
  void settle_on_chosen();

  ThreadTeamPolicy policy_;
  int max_;
  bool pinned_;
  int size_;
  Phase phase_ = Phase::settle;
  Mode mode_ = Mode::reference;
  int settling_ = 0;
  std::vector<double> window_;
  int chosen_ = 0;                     // the size kept between probes
  double chosen_time_ = 0;             // its median step time
  std::vector<int> candidates_;        // sizes the round still has to time
  std::map<int, double> round_times_;  // medians timed in this round
  std::int64_t steps_since_probe_ = 0;
  std::int64_t reprobe_interval_ = 0;  // first_reprobe, doubling up to reprobe_every
  std::map<int, std::int64_t> steps_by_size_;
};

// The tuner applied to the calling thread's OpenMP team for the duration of a
// trainer: begin_step sets the team size, end_step times the step; the destructor
// restores the maximum. Inactive (on a GPU backend) it does nothing.
class ThreadTeam {
 public:
  // threads: training.threads (0: auto).
  ThreadTeam(bool active, int threads);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  void begin_step();
  void end_step();
  // Keeps the team at its current size for the rest of the trainer, no more probes:
  // for steps whose bits depend on the thread count (oneDNN threads its
  // convolutions itself), where a size chosen by timing would make a run's results
  // depend on how busy the machine was. `why` goes to to_json(). A pinned team
  // (training.threads) stays as it is.
  void hold(const std::string& why);
  bool active() const { return active_; }
  ThreadTeamTuner& tuner() { return tuner_; }
  const ThreadTeamTuner& tuner() const { return tuner_; }
  // tuner().to_json() (mode "held", with "held_because", once held), or null when
  // inactive.
  nlohmann::json to_json() const;

 private:
  bool active_;
  int max_threads_;
  ThreadTeamTuner tuner_;
  std::string held_because_;  // empty: not held
  double step_start_ = 0;
};

}  // namespace eqprop
