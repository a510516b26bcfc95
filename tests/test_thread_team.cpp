// The thread-team tuner (engine/thread_team.h) driven by a fake clock: a step's
// time is a function of the team size the tuner asked for, so its decisions can be
// checked exactly. And a training run whose team size changes every few steps
// equals a run at one fixed size bit for bit.
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "engine/thread_team.h"
#include "engine/trainer.h"
#include "engine/training_run.h"
#include "tests/skip.h"
#include "tests/synthetic_data.h"

namespace eqprop {
namespace {

// Runs `steps` steps whose time at each size is step_time(size, step); returns the
// size of every step.
std::vector<int> run_steps(ThreadTeamTuner& tuner, int steps, const std::function<double(int, int)>& step_time) {
  std::vector<int> sizes;
  for (int step = 0; step < steps; ++step) {
    sizes.push_back(tuner.size());
    tuner.record(step_time(tuner.size(), step));
  }
  return sizes;
}

// Idle 2 cores: 2 threads 3.17 ms, 1 thread 4.68 ms; one core busy: 4.98 and
// 4.65 ms (perf/busy_core.sh at the default config).
double two_cores(int size, bool busy) {
  if (busy) return size == 1 ? 4.65e-3 : 4.98e-3;
  return size == 1 ? 4.68e-3 : 3.17e-3;
}

}  // namespace

TEST_CASE("thread team: keeps the faster size and settles within the first steps") {
  ThreadTeamTuner idle(2, 0);
  run_steps(idle, 50, [](int size, int) { return two_cores(size, false); });
  CHECK(idle.size() == 2);
  ThreadTeamTuner busy(2, 0);
  const std::vector<int> sizes = run_steps(busy, 50, [](int size, int) { return two_cores(size, true); });
  CHECK(busy.size() == 1);
  // Settled after one probe round (10 steps): from then on, one thread
  // but for the one round that confirms the change (5 steps).
  CHECK(std::count(sizes.begin() + 10, sizes.end(), 2) <= 5);
  CHECK(sizes.back() == 1);
  CHECK(busy.to_json()["final"] == 1);
  CHECK(busy.to_json()["mode"] == "auto");
}

TEST_CASE("thread team: climbs down several sizes and never exceeds the maximum") {
  // Fastest at 2 of 6: the tuner starts at 6 and walks down.
  ThreadTeamTuner tuner(6, 0);
  const std::vector<int> sizes =
      run_steps(tuner, 400, [](int size, int) { return 1e-3 * (1.0 + 0.2 * std::abs(size - 2)); });
  CHECK(tuner.size() == 2);
  for (int size : sizes) {
    CHECK(size >= 1);
    CHECK(size <= 6);
  }
  // More threads always faster: stays at the maximum, probing only below it.
  ThreadTeamTuner more(4, 0);
  for (int size : run_steps(more, 400, [](int size, int) { return 1e-3 / size; })) CHECK(size <= 4);
  CHECK(more.size() == 4);
}

TEST_CASE("thread team: follows a machine that becomes busy, then idle again") {
  ThreadTeamTuner tuner(2, 0);
  // Idle for 100 steps, busy for 300, idle for 300.
  const auto machine = [](int size, int step) { return two_cores(size, step >= 100 && step < 400); };
  const std::vector<int> sizes = run_steps(tuner, 700, machine);
  CHECK(sizes[90] == 2);
  // The shift (4.98 vs 3.17 ms) starts a probe at once.
  int busy_switch = 0;
  for (int step = 100; step < 400 && !busy_switch; ++step)
    if (sizes[step] == 1 && sizes[step + 1] == 1 && sizes[step + 10] == 1) busy_switch = step;
  CHECK(busy_switch > 0);
  CHECK(busy_switch < 100 + 20);
  CHECK(sizes[390] == 1);
  // Idle again: one thread's time barely changes, so the periodic probe finds it.
  CHECK(sizes[699] == 2);
  int back = 0;
  for (int step = 400; step < 700 && !back; ++step)
    if (sizes[step] == 2 && sizes[step + 1] == 2) back = step;
  CHECK(back > 0);
  CHECK(back < 400 + ThreadTeamPolicy{}.reprobe_every + 20);
}

TEST_CASE("thread team: a jittery step time does not make it flap") {
  ThreadTeamTuner tuner(2, 0);
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> jitter(-0.01, 0.01);  // +-1%, below the margin
  const std::vector<int> sizes =
      run_steps(tuner, 600, [&](int size, int) { return two_cores(size, false) * (1.0 + jitter(rng)); });
  // Only the probes run at one thread: 5 steps a round, rounds ever rarer.
  const auto at_one = std::count(sizes.begin(), sizes.end(), 1);
  CHECK(at_one < 600 / 10);
  CHECK(tuner.size() == 2);
}

TEST_CASE("thread team: pinning disables the tuner") {
  ThreadTeamTuner tuner(2, 1);
  CHECK(tuner.pinned());
  for (int size : run_steps(tuner, 300, [](int size, int) { return two_cores(size, false); })) CHECK(size == 1);
  CHECK(tuner.to_json()["mode"] == "pinned");
  CHECK(tuner.to_json()["steps_by_size"]["1"] == 300);
}

TEST_CASE("thread team: training that switches sizes every few steps equals training at one size") {
  const int threads_before = omp_get_max_threads();
  const DatasetSplits data = test::halves();
  const Normalization normalization = make_normalization(parse_config(nlohmann::json::object(), "test"), data.train);
  const auto train = [&](int pinned, bool flapping) {
    omp_set_num_threads(3);
    const Config config = parse_config(
        nlohmann::json{{"model", {{"layers", {16, 300, 2}}}},
                       {"dynamics", {{"t_free", 12}, {"t_nudge", 4}}},
                       {"training", {{"epochs", 1}, {"batch_size", 64}, {"threads", pinned}}}},
        "test");
    auto backend = make_backend("cpu");
    Trainer trainer(*backend, config, 16, 2);
    if (flapping) {
      // Every neighbour is "faster": a new size every other step.
      ThreadTeamPolicy policy;
      policy.window_steps = 1;
      policy.settle_steps = 0;
      policy.first_reprobe = 1;
      policy.reprobe_every = 1;
      policy.margin = -1e9;
      trainer.thread_team().tuner() = ThreadTeamTuner(3, 0, policy);
    }
    trainer.train_epoch(data.train, normalization, 0, {});
    const auto sizes = trainer.thread_team().tuner().steps_by_size();
    if (flapping) CHECK(sizes.size() >= 2);
    std::vector<float> weights = trainer.model().parameters().weights[0].to_host();
    omp_set_num_threads(threads_before);
    return weights;
  };
  const std::vector<float> fixed = train(1, false);
  CHECK(train(2, false) == fixed);
  CHECK(train(3, false) == fixed);
  CHECK(train(0, true) == fixed);  // bit for bit
}

TEST_CASE("thread team: a trainer whose convolutions run on the library holds its size") {
  // oneDNN threads its convolutions itself (other bits at another thread count), so
  // after the first step that ran one the team stays at its size, where the tuner
  // of this case would otherwise take a new size every other step (as it does on
  // im2col, whose bits do not depend on the size).
  const int threads_before = omp_get_max_threads();
  const DatasetSplits data = test::halves();
  const Normalization normalization = make_normalization(parse_config(nlohmann::json::object(), "test"), data.train);
  const auto steps_by_size = [&](const char* conv_path) {
    omp_set_num_threads(2);
    const Config config = parse_config(
        nlohmann::json{{"model", {{"kind", "conv_hopfield"}, {"layers", {2}}, {"cost", "cross_entropy"}}},
                       {"conv", {{"input_shape", {1, 4, 4}}, {"channels", {4}}, {"kernel", {3}}, {"padding", {1}}}},
                       {"dynamics", {{"t_free", 4}, {"t_nudge", 2}}},
                       {"training", {{"epochs", 1}, {"batch_size", 16}, {"conv_path", conv_path}}}},
        "test");
    auto backend = make_backend("cpu");
    Trainer trainer(*backend, config, 16, 2);
    ThreadTeamPolicy policy;
    policy.window_steps = 1;
    policy.settle_steps = 0;
    policy.first_reprobe = 1;
    policy.reprobe_every = 1;
    policy.margin = -1e9;  // every neighbour is "faster"
    trainer.thread_team().tuner() = ThreadTeamTuner(2, 0, policy);
    trainer.train_epoch(data.train, normalization, 0, {});
    const nlohmann::json team = trainer.thread_team().to_json();
    omp_set_num_threads(threads_before);
    return team;
  };
  const nlohmann::json im2col = steps_by_size("im2col");
  CHECK(im2col["mode"] == "auto");
  CHECK(im2col["steps_by_size"].size() == 2);
  if (test::skip_case_if(make_backend("cpu")->convolution_library_description().empty(),
                         "no convolution library in this build"))
    return;
  const nlohmann::json library = steps_by_size("library");
  MESSAGE(library.dump());
  CHECK(library["mode"] == "held");
  CHECK(library["held_because"].get<std::string>().find("library convolutions") != std::string::npos);
  CHECK(library["steps_by_size"].size() == 1);
}

}  // namespace eqprop
