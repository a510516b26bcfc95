#include "engine/maxcut_solver.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <tuple>

#include "engine/distributed.h"
#include "engine/oscillator_ising_strategy.h"
#include "engine/simulated_annealing_strategy.h"
#include "engine/simulated_bifurcation_strategy.h"
#include "engine/solver_strategy.h"
#include "kernels/device_buffer.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

template <class Enum>
struct NamedValue {
  Enum value;
  const char* name;
};

constexpr NamedValue<SolverMethod> kMethodNames[] = {
    {SolverMethod::bsb, "bsb"}, {SolverMethod::dsb, "dsb"}, {SolverMethod::sa, "sa"}, {SolverMethod::oim, "oim"}};
constexpr NamedValue<SolverPath> kPathNames[] = {
    {SolverPath::automatic, "auto"}, {SolverPath::fused_block, "fused_block"}, {SolverPath::gemm, "gemm"}};

template <class Enum, std::size_t count>
Enum value_named(const NamedValue<Enum> (&table)[count], const std::string& name, const std::string& unknown) {
  for (const NamedValue<Enum>& entry : table)
    if (name == entry.name) return entry.value;
  throw ConfigError(unknown);
}

template <class Enum, std::size_t count>
std::string name_of(const NamedValue<Enum> (&table)[count], Enum value) {
  for (const NamedValue<Enum>& entry : table)
    if (entry.value == value) return entry.name;
  return "?";
}

void check_options(const SolverOptions& options) {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw ConfigError("solver: " + what);
  };
  require(options.replicas >= 1 && options.replicas <= (1 << 24),
          "replicas must be in [1, 2^24], got " + std::to_string(options.replicas));
  require(options.steps >= 1, "steps must be >= 1, got " + std::to_string(options.steps));
  require(options.rounds >= 1, "rounds must be >= 1, got " + std::to_string(options.rounds));
  require(options.evaluations >= 1, "evaluations must be >= 1, got " + std::to_string(options.evaluations));
  require(std::isfinite(options.time_limit_s) && options.time_limit_s >= 0,
          "time limit must be >= 0 seconds (0: none)");
  require(std::isfinite(options.dt), "dt must be finite (<= 0: the default)");
  require(std::isfinite(options.a0) && options.a0 > 0, "a0 must be > 0");
  require(std::isfinite(options.c0), "c0 must be finite (<= 0: the default)");
  require(std::isfinite(options.initial_amplitude) && options.initial_amplitude > 0 &&
              options.initial_amplitude <= 1,
          "initial amplitude must be in (0, 1]");
  require(std::isfinite(options.beta_start) && std::isfinite(options.beta_end),
          "beta_start and beta_end must be finite (<= 0: the defaults)");
}

// The method's parameters with the defaults of SolverOptions resolved.
struct MethodParameters {
  float c0 = 0.0f;
  float dt = 0.0f;  // SB and OIM
  float beta_start = 0.0f, beta_end = 0.0f;
  float oim_injection = 0.0f;  // OIM: K at the end of a round
};

MethodParameters resolve_parameters(const std::vector<float>& dense, int n, const SolverOptions& options) {
  MethodParameters resolved;
  resolved.c0 = options.c0 > 0 ? options.c0 : default_sb_c0(dense, n);
  if (options.method == SolverMethod::oim) {
    // The injection ramps to the coupling's spectral radius rho, so that at the
    // end it dominates and locks the phases. dt = 2 / (3 rho), the explicit-Euler
    // limit 2 / (rho + 2 K) at the end of the ramp: a quarter of it reached the
    // optimum of the small test graphs in 16-75% of the replicas, this in 63-98%.
    const double radius = spectral_radius_estimate(dense, n, 50);
    resolved.oim_injection = static_cast<float>(radius);
    resolved.dt = options.dt > 0 ? options.dt : static_cast<float>(2.0 / std::max(3.0 * radius, 1e-30));
  } else if (options.method != SolverMethod::sa) {
    const float fraction_of_limit = options.method == SolverMethod::dsb ? 0.5f : 0.9f;
    resolved.dt = options.dt > 0 ? options.dt : default_sb_dt(dense, n, options.a0, resolved.c0, fraction_of_limit);
  }
  float hot = 0, cold = 0;
  default_sa_betas(dense, n, hot, cold);
  resolved.beta_start = options.beta_start > 0 ? options.beta_start : hot;
  resolved.beta_end = options.beta_end > 0 ? options.beta_end : cold;
  return resolved;
}

// bSB and dSB take the fused path when forced, or automatically for small problems
// on a backend where it is faster; SA and OIM have only their own.
SolverPath choose_path(const Backend& backend, const SolverOptions& options, int n) {
  const bool sb = options.method == SolverMethod::bsb || options.method == SolverMethod::dsb;
  if (!sb && options.path == SolverPath::fused_block)
    throw ConfigError("solver: the fused path runs bsb and dsb only, not " + solver_method_name(options.method));
  const bool fused = sb && (options.path == SolverPath::fused_block ||
                            (options.path == SolverPath::automatic && n <= fused_sb_max_spins(backend)));
  return fused ? SolverPath::fused_block : SolverPath::gemm;
}

std::unique_ptr<SolverStrategy> make_strategy(const SolverSetup& setup, const SolverOptions& options,
                                              const MethodParameters& resolved, SolverPath path) {
  switch (options.method) {
    case SolverMethod::sa:
      return std::make_unique<SimulatedAnnealingStrategy>(setup, resolved.beta_start, resolved.beta_end);
    case SolverMethod::oim:
      return std::make_unique<OscillatorIsingStrategy>(setup, resolved.oim_injection, resolved.dt);
    case SolverMethod::bsb:
    case SolverMethod::dsb:
      break;
  }
  const SbParameters sb{options.a0, resolved.c0, resolved.dt, options.initial_amplitude,
                        options.method == SolverMethod::dsb};
  if (path == SolverPath::fused_block) return std::make_unique<FusedSimulatedBifurcationStrategy>(setup, sb);
  return std::make_unique<SimulatedBifurcationStrategy>(setup, sb);
}

// The time limit, looked at between ranges of steps. A range is sized from the
// time per step measured on the previous one, to take about 1/kRangesPerLimit of
// the limit, and grows at most twofold per range (the first is one step), so the
// solve ends within about one such range and one evaluation after the limit.
// Splitting does not change the arithmetic (engine/solver_strategy.h); without a
// limit a range is the whole stretch between two evaluations, as it always was.
class Deadline {
 public:
  Deadline(double limit_s, Clock::time_point start) : limit_s_(limit_s), start_(start) {}

  bool limited() const { return limit_s_ > 0; }
  bool passed() const { return limited() && seconds_since(start_) >= limit_s_; }

  // The end of the next range of steps from `step`, at most `end`.
  int range_end(int step, int end) const { return limited() ? step + std::min(end - step, range_steps_) : end; }

  // After a range of `steps` that took `seconds` (the device synchronized).
  void measured(int steps, double seconds) {
    const double per_step = std::max(seconds / steps, 1e-12);
    const double fitting = limit_s_ / kRangesPerLimit / per_step;
    range_steps_ = static_cast<int>(std::max(1.0, std::min({fitting, 2.0 * range_steps_, double(1 << 30)})));
  }

 private:
  static constexpr double kRangesPerLimit = 64;
  const double limit_s_;
  const Clock::time_point start_;
  int range_steps_ = 1;
};

// Steps [first_step, last_step) of the round, in ranges with a look at the clock
// between them. Returns the step reached: last_step, or earlier when the limit has
// passed (after at least one range, so that the evaluation sees new steps).
int advance_until(Backend& backend, SolverStrategy& strategy, int first_step, int last_step, Deadline& deadline) {
  int step = first_step;
  while (step < last_step && !(step > first_step && deadline.passed())) {
    const int end = deadline.range_end(step, last_step);
    const auto range_start = Clock::now();
    strategy.advance(step, end);
    if (deadline.limited()) {
      backend.synchronize();
      deadline.measured(end - step, seconds_since(range_start));
    }
    step = end;
  }
  return step;
}

// The energy E = -1/2 s^T J s of every replica from its spins S (replicas, n) and
// F = S J (replicas, n), and the first replica with the lowest. Summed in double
// from float F: exact for integer J (|F| < 2^24), to float rounding otherwise.
int lowest_energy(const std::vector<float>& spins, const std::vector<float>& fields, int replicas, int n,
                  std::vector<double>& energies) {
  energies.resize(static_cast<std::size_t>(replicas));
#pragma omp parallel for schedule(static) if (double(replicas) * n >= 1e6)
  for (int r = 0; r < replicas; ++r) {
    const float* s = spins.data() + std::size_t(r) * n;
    const float* f = fields.data() + std::size_t(r) * n;
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += double(s[i]) * double(f[i]);
    energies[r] = -0.5 * sum;
  }
  int best = 0;
  for (int r = 1; r < replicas; ++r)  // first lowest: independent of the thread count
    if (energies[r] < energies[best]) best = r;
  return best;
}

// The evaluations of the solver loop: every replica's energy from host copies of
// its spins and fields, the lowest recomputed exactly in double from the sparse
// couplings, and the best so far kept in the result with where and when it was seen.
class ReplicaEvaluator {
 public:
  // problem: what the replicas solve (fields absorbed); original: the caller's.
  // first_replica: the global number of the strategy's replica 0 (MPI ranks).
  ReplicaEvaluator(Backend& backend, const IsingProblem& original, const IsingProblem& problem, int replicas,
                   int first_replica)
      : backend_(backend),
        original_(original),
        problem_(problem),
        replicas_(replicas),
        first_replica_(first_replica),
        host_spins_(std::size_t(replicas) * problem.spins),
        host_fields_(host_spins_.size()) {}

  // After strategy.compute_fields(), at `step` of `round`; `start`: of the solve.
  void evaluate(const SolverStrategy& strategy, int round, int step, Clock::time_point start, SolverResult& result) {
    const auto evaluation_start = Clock::now();
    const int n = problem_.spins;
    backend_.copy_to_host(host_spins_.data(), strategy.spins(), host_spins_.size() * sizeof(float));
    backend_.copy_to_host(host_fields_.data(), strategy.fields(), host_fields_.size() * sizeof(float));
    const int candidate = lowest_energy(host_spins_, host_fields_, replicas_, n, result.final_energies);
    std::vector<std::int8_t> spins(static_cast<std::size_t>(n));
    const float* row = host_spins_.data() + std::size_t(candidate) * n;
    for (int i = 0; i < n; ++i) spins[i] = row[i] > 0.0f ? 1 : -1;
    const double energy = ising_energy(problem_, spins.data());  // exact, in double
    if (energy < best_energy_) {
      best_energy_ = energy;
      result.time_to_best_s = seconds_since(start);
      result.best_round = round;
      result.best_replica = first_replica_ + candidate;
      result.best_step = step;
      result.best_spins = original_.has_fields() ? restore_gauge(spins.data(), original_.spins) : spins;
    }
    result.evaluation_seconds += seconds_since(evaluation_start);
  }

 private:
  Backend& backend_;
  const IsingProblem& original_;
  const IsingProblem& problem_;
  const int replicas_;
  const int first_replica_;
  std::vector<float> host_spins_, host_fields_;  // (replicas, n)
  double best_energy_ = std::numeric_limits<double>::infinity();
};

// A solve spread over MPI ranks (each ran `share` of the replicas) made the result
// of one process running them all: the best is the lowest energy, first seen at the
// earliest (round, step), then the lowest global replica, which is the one the
// single process keeps (it takes the first lowest replica at each evaluation and
// replaces its best only by a lower energy), so the answer does not depend on the
// rank count. The winner's spins are broadcast from its rank; final_energies are
// gathered into their global places. Steps and rounds are the fewest any rank did
// (they differ only when a time limit stopped the ranks at their own points), the
// times the longest. Returns the replica steps of all ranks (for the rate).
// One allreduce (a gather: every rank's numbers in their own slots, zeros
// elsewhere, summed exactly) and one broadcast.
double combine_over_ranks(Distributed& world, const RankShare& share, int total_replicas, int n,
                          SolverResult& result) {
  enum Field { energy, round, step, replica, time_to_best, seconds, setup_seconds, evaluation_seconds, steps_done,
               rounds_done, limit_reached, replica_steps, kFields };
  const std::size_t ranks = static_cast<std::size_t>(world.size());
  std::vector<double> gathered(ranks * kFields + static_cast<std::size_t>(total_replicas), 0.0);
  double* mine = gathered.data() + std::size_t(world.rank()) * kFields;
  mine[energy] = result.best_energy;
  mine[round] = result.best_round;
  mine[step] = static_cast<double>(result.best_step);
  mine[replica] = result.best_replica;
  mine[time_to_best] = result.time_to_best_s;
  mine[seconds] = result.seconds;
  mine[setup_seconds] = result.setup_seconds;
  mine[evaluation_seconds] = result.evaluation_seconds;
  mine[steps_done] = static_cast<double>(result.steps_done);
  mine[rounds_done] = result.rounds_done;
  mine[limit_reached] = result.time_limit_reached ? 1.0 : 0.0;
  mine[replica_steps] = static_cast<double>(share.size()) * static_cast<double>(result.steps_done);
  std::copy(result.final_energies.begin(), result.final_energies.end(),
            gathered.begin() + static_cast<std::ptrdiff_t>(ranks * kFields + share.begin));
  world.allreduce_sum(gathered.data(), static_cast<std::int64_t>(gathered.size()));

  const auto key = [&](std::size_t r) {
    const double* f = gathered.data() + r * kFields;
    return std::make_tuple(f[energy], f[round], f[step], f[replica]);
  };
  std::size_t winner = 0;
  for (std::size_t r = 1; r < ranks; ++r)
    if (key(r) < key(winner)) winner = r;
  const double* best = gathered.data() + winner * kFields;
  result.best_energy = best[energy];
  result.best_round = static_cast<int>(best[round]);
  result.best_step = static_cast<std::int64_t>(best[step]);
  result.best_replica = static_cast<int>(best[replica]);
  result.time_to_best_s = best[time_to_best];
  result.best_spins.resize(static_cast<std::size_t>(n));
  world.broadcast(result.best_spins.data(), n, static_cast<int>(winner));

  double total_replica_steps = 0;
  result.seconds = result.setup_seconds = result.evaluation_seconds = 0;
  result.steps_done = std::numeric_limits<std::int64_t>::max();
  result.rounds_done = std::numeric_limits<int>::max();
  result.time_limit_reached = false;
  for (std::size_t r = 0; r < ranks; ++r) {
    const double* f = gathered.data() + r * kFields;
    result.seconds = std::max(result.seconds, f[seconds]);
    result.setup_seconds = std::max(result.setup_seconds, f[setup_seconds]);
    result.evaluation_seconds = std::max(result.evaluation_seconds, f[evaluation_seconds]);
    result.steps_done = std::min(result.steps_done, static_cast<std::int64_t>(f[steps_done]));
    result.rounds_done = std::min(result.rounds_done, static_cast<int>(f[rounds_done]));
    result.time_limit_reached = result.time_limit_reached || f[limit_reached] != 0.0;
    total_replica_steps += f[replica_steps];
  }
  result.final_energies.assign(gathered.begin() + static_cast<std::ptrdiff_t>(ranks * kFields), gathered.end());
  return total_replica_steps;
}

}  // namespace

SolverMethod parse_solver_method(const std::string& name) {
  return value_named(kMethodNames, name, "unknown solver method '" + name + "' (methods: bsb, dsb, sa, oim)");
}

std::string solver_method_name(SolverMethod method) { return name_of(kMethodNames, method); }

SolverPath parse_solver_path(const std::string& name) {
  if (name == "fused") return SolverPath::fused_block;  // the command line's short spelling
  return value_named(kPathNames, name, "unknown solver path '" + name + "' (paths: auto, fused, gemm)");
}

std::string solver_path_name(SolverPath path) { return name_of(kPathNames, path); }

// Where SolverPath::automatic stops taking the fused path.
//
// CPU: never (0). Measured with perf/sb_path_crossover.sh (dSB, dense +-1, 2-core
// Xeon shared with other jobs; perf/results/sb_path_crossover.jsonl): the GEMM path
// took 0.15-0.50x the fused path's time at n = 16..2000 with 64 or 256 replicas, and
// 0.33-0.93x with 16 except at n = 16 (fused 1.3x faster, within the noise of that
// machine). On a CPU the fused field is one matrix-vector product per replica,
// streamed from the caches with a separate multiply and add (no FMA contraction,
// for bit-exactness), while OpenBLAS reuses J across replicas in registers with FMAs:
// the fused path can at best approach half the GEMM's rate. It won only with 4
// replicas and n >= 1000, where the GEMM of 4 rows runs far below its rate; too
// few replicas for this solver to be used that way.
//
// GPU: n <= 192, from the memory hierarchy (not yet measured on a GPU). The fused
// block re-reads J (4 n^2 bytes) at every step; the GEMM path reads it once per step
// for all replicas but pays two launches and two passes over the (replicas, n)
// arrays, about 10 us per step whatever n. Up to n = 192, J (147 KB) stays in each
// SM's L1 next to the block's 3 KB of shared memory (256 KB of L1 + shared per SM
// on H100, 192 KB on A100), so the re-reads run at L1 bandwidth (~30 TB/s over an
// H100's SMs): 1024 replicas at n = 192 move 151 MB, ~5 us per step, under the GEMM
// path's overhead. Beyond that J spills to L2 (~5 TB/s): at n = 256, 1024 replicas
// move 268 MB, ~50 us per step, against ~3 us of GEMM (134 MFLOP) plus the ~10 us.
// Shared memory is not the limit (4 arrays of n floats: 227 KB would hold n ~ 14500).
constexpr int kFusedSbMaxSpinsCpu = 0;
constexpr int kFusedSbMaxSpinsGpu = 192;

int fused_sb_max_spins(const Backend& backend) {
  return backend.traits().has_on_chip_blocks ? kFusedSbMaxSpinsGpu : kFusedSbMaxSpinsCpu;
}

float default_sb_c0(const std::vector<float>& dense, int n) {
  const double rms = coupling_rms(dense, n);
  return rms > 0 ? static_cast<float>(0.5 / (rms * std::sqrt(double(n)))) : 0.0f;
}

float default_sb_dt(const std::vector<float>& dense, int n, float a0, float c0, float fraction_of_limit) {
  // 50 power iterations approach rho from below, to within a few percent on the
  // G-set graphs (their leading eigenvalue is well separated).
  const double radius = spectral_radius_estimate(dense, n, 50);
  return static_cast<float>(fraction_of_limit * 2.0 / std::sqrt(double(a0) * (a0 + double(c0) * radius)));
}

void default_sa_betas(const std::vector<float>& dense, int n, float& beta_start, float& beta_end) {
  double largest_flip = 0.0, smallest_coupling = std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i) {
    double row_sum = 0.0;
    for (int j = 0; j < n; ++j) {
      const double magnitude = std::fabs(double(dense[std::size_t(i) * n + j]));
      row_sum += magnitude;
      if (magnitude > 0) smallest_coupling = std::min(smallest_coupling, magnitude);
    }
    largest_flip = std::max(largest_flip, 2.0 * row_sum);
  }
  if (largest_flip == 0.0) {  // no couplings: every assignment is a ground state
    beta_start = beta_end = 1.0f;
    return;
  }
  beta_start = static_cast<float>(std::log(2.0) / largest_flip);
  beta_end = static_cast<float>(std::log(100.0) / (2.0 * smallest_coupling));
}

SolverResult solve_ising(Backend& backend, const IsingProblem& original, const SolverOptions& options) {
  check_options(options);
  if (original.spins > kMaxDenseSpins)
    throw DataError("a problem of " + std::to_string(original.spins) +
                    " spins is too large for the dense solvers (at most " + std::to_string(kMaxDenseSpins) +
                    " spins: J is an n x n float matrix on the device)");
  const auto setup_start = Clock::now();
  Deadline deadline(options.time_limit_s, setup_start);  // the limit counts the setup too
  const IsingProblem problem = original.has_fields() ? absorb_fields(original) : original;
  SolverResult result;
  result.path = choose_path(backend, options, problem.spins);
  const std::vector<float> dense = dense_couplings(problem, kMaxDenseSpins + 1);
  const MethodParameters resolved = resolve_parameters(dense, problem.spins, options);
  result.c0 = resolved.c0;
  result.dt = resolved.dt;
  result.beta_start = resolved.beta_start;
  result.beta_end = resolved.beta_end;

  // Under mpirun each rank runs its share of the replicas, keyed by their global
  // numbers (SolverSetup::first_replica): together the replicas of one process.
  Distributed& world = Distributed::world();
  if (options.replicas < world.size())
    throw ConfigError("solver: " + std::to_string(options.replicas) + " replicas cannot be spread over " +
                      std::to_string(world.size()) + " MPI ranks (at least one each)");
  const RankShare share = world.share_of(options.replicas);
  const int replicas = static_cast<int>(share.size()), first_replica = static_cast<int>(share.begin);

  DeviceBuffer<float> couplings(backend, dense.size());
  couplings.copy_from_host(dense);
  const SolverSetup setup{backend, couplings.data(), problem.spins, replicas, options.steps, options.seed,
                          first_replica};
  const std::unique_ptr<SolverStrategy> strategy = make_strategy(setup, options, resolved, result.path);
  ReplicaEvaluator evaluator(backend, original, problem, replicas, first_replica);
  backend.synchronize();
  result.setup_seconds = seconds_since(setup_start);

  // Rounds of `steps`, each evaluated every `interval` steps and at its end.
  const int steps = options.steps;
  const int interval = (steps + options.evaluations - 1) / options.evaluations;
  const auto start = Clock::now();
  for (int round = 0; round < options.rounds && !result.time_limit_reached; ++round) {
    strategy->start_round(static_cast<std::uint32_t>(round));
    ++result.rounds_done;
    for (int first_step = 0; first_step < steps && !result.time_limit_reached; first_step += interval) {
      const int reached = advance_until(backend, *strategy, first_step, std::min(steps, first_step + interval),
                                        deadline);
      result.steps_done += reached - first_step;
      strategy->compute_fields();
      evaluator.evaluate(*strategy, round, reached, start, result);
      const bool work_left = reached < steps || round + 1 < options.rounds;
      result.time_limit_reached = work_left && deadline.passed();
    }
  }
  result.seconds = seconds_since(start);
  // The energy of the original problem, recomputed from the returned spins.
  result.best_energy = ising_energy(original, result.best_spins.data());
  const double replica_steps = world.size() > 1
                                   ? combine_over_ranks(world, share, options.replicas, original.spins, result)
                                   : double(replicas) * double(result.steps_done);
  result.spin_updates_per_s = result.seconds > 0 ? double(original.spins) * replica_steps / result.seconds : 0.0;
  return result;
}

}  // namespace eqprop
