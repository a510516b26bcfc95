#include "engine/maxcut_solver.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "kernels/device_buffer.h"
#include "kernels/error.h"
#include "kernels/fused_sb_block.h"

namespace eqprop {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
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

}  // namespace

SolverMethod parse_solver_method(const std::string& name) {
  if (name == "bsb") return SolverMethod::bsb;
  if (name == "dsb") return SolverMethod::dsb;
  if (name == "sa") return SolverMethod::sa;
  if (name == "oim") return SolverMethod::oim;
  throw ConfigError("unknown solver method '" + name + "' (methods: bsb, dsb, sa, oim)");
}

std::string solver_method_name(SolverMethod method) {
  switch (method) {
    case SolverMethod::bsb: return "bsb";
    case SolverMethod::dsb: return "dsb";
    case SolverMethod::sa: return "sa";
    case SolverMethod::oim: return "oim";
  }
  return "?";
}

SolverPath parse_solver_path(const std::string& name) {
  if (name == "auto") return SolverPath::automatic;
  if (name == "fused" || name == "fused_block") return SolverPath::fused_block;
  if (name == "gemm") return SolverPath::gemm;
  throw ConfigError("unknown solver path '" + name + "' (paths: auto, fused, gemm)");
}

std::string solver_path_name(SolverPath path) {
  switch (path) {
    case SolverPath::automatic: return "auto";
    case SolverPath::fused_block: return "fused_block";
    case SolverPath::gemm: return "gemm";
  }
  return "?";
}

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
  return backend.name() == "cuda" ? kFusedSbMaxSpinsGpu : kFusedSbMaxSpinsCpu;
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
  const bool gauged = original.has_fields();
  const IsingProblem problem = gauged ? absorb_fields(original) : original;
  const int n = problem.spins;
  const int replicas = options.replicas;
  const bool sa = options.method == SolverMethod::sa;
  const bool oim = options.method == SolverMethod::oim;
  const bool discrete = options.method == SolverMethod::dsb;

  SolverResult result;
  if ((sa || oim) && options.path == SolverPath::fused_block)
    throw ConfigError("solver: the fused path runs bsb and dsb only, not " + solver_method_name(options.method));
  const bool fused = !sa && !oim &&
                     (options.path == SolverPath::fused_block ||
                      (options.path == SolverPath::automatic && n <= fused_sb_max_spins(backend)));
  result.path = fused ? SolverPath::fused_block : SolverPath::gemm;
  const std::vector<float> dense = dense_couplings(problem, kMaxDenseSpins + 1);
  result.c0 = options.c0 > 0 ? options.c0 : default_sb_c0(dense, n);
  // OIM: the injection ramps to the coupling's spectral radius rho, so that at the
  // end it dominates and locks the phases. dt = 2 / (3 rho), the explicit-Euler
  // limit 2 / (rho + 2 K) at the end of the ramp: a quarter of it reached the
  // optimum of the small test graphs in 16-75% of the replicas, this in 63-98%.
  float oim_injection = 0.0f;
  if (oim) {
    const double radius = spectral_radius_estimate(dense, n, 50);
    oim_injection = static_cast<float>(radius);
    result.dt = options.dt > 0 ? options.dt : static_cast<float>(2.0 / std::max(3.0 * radius, 1e-30));
  } else if (!sa) {
    result.dt = options.dt > 0 ? options.dt : default_sb_dt(dense, n, options.a0, result.c0, discrete ? 0.5f : 0.9f);
  }
  {
    float hot = 0, cold = 0;
    default_sa_betas(dense, n, hot, cold);
    result.beta_start = options.beta_start > 0 ? options.beta_start : hot;
    result.beta_end = options.beta_end > 0 ? options.beta_end : cold;
  }

  DeviceBuffer<float> couplings(backend, dense.size());
  couplings.copy_from_host(dense);
  const std::size_t states_count = std::size_t(replicas) * n;
  // SB: positions x, momenta y, sign(x) and the GEMM output F. SA: spins (in x) and
  // their local fields (in F).
  DeviceBuffer<float> x(backend, states_count), field(backend, states_count);
  DeviceBuffer<float> y(backend, sa ? 0 : states_count), signs(backend, sa ? 0 : states_count);
  // OIM: x holds the phases, y their cosines, and these their sines and J sin phi.
  DeviceBuffer<float> sines(backend, oim ? states_count : 0), sin_field(backend, oim ? states_count : 0);
  float* spins_on_device = sa ? x.data() : signs.data();  // what an evaluation reads
  std::vector<float> host_spins(states_count), host_fields(states_count);
  backend.synchronize();
  result.setup_seconds = seconds_since(setup_start);

  const int steps = options.steps;
  const int chunk = (steps + options.evaluations - 1) / options.evaluations;
  const float* j_matrix = couplings.data();
  const auto start = Clock::now();
  double best_energy = std::numeric_limits<double>::infinity();

  for (int round = 0; round < options.rounds && !result.time_limit_reached; ++round) {
    const auto round_key = static_cast<std::uint32_t>(round);
    if (sa) {
      backend.run(RandomSpinsOp{x.data(), options.seed, 0, round_key}, static_cast<std::int64_t>(states_count));
    } else if (oim) {
      backend.run(OimInitOp{x.data(), y.data(), sines.data(), signs.data(), options.seed, 0, round_key},
                  static_cast<std::int64_t>(states_count));
    } else {
      backend.run(SbInitOp{x.data(), y.data(), signs.data(), options.seed, 0, round_key, options.initial_amplitude},
                  static_cast<std::int64_t>(states_count));
    }
    ++result.rounds_done;

    for (int first_step = 0; first_step < steps; first_step += chunk) {
      const int last_step = std::min(steps, first_step + chunk);
      if (fused) {
        // One launch for the chunk (one block per replica), then F = S J for the evaluation.
        backend.run_blocks(FusedSbBlock{j_matrix, x.data(), y.data(), signs.data(), n, first_step, last_step, steps,
                                        options.a0, result.c0, result.dt, discrete},
                           replicas, FusedSbLaunchPolicy::threads_per_block(n));
        backend.gemm(Transpose::no, Transpose::no, replicas, n, n, 1.0f, signs.data(), n, j_matrix, n, 0.0f,
                     field.data(), n);
      } else {
        // Each slice of replicas runs its steps without synchronizing with the others,
        // and ends with F = S J for the evaluation (one more GEMM).
        backend.parallel_over_rows(replicas, [&](int begin, int end) {
          const int rows = end - begin;
          const std::size_t offset = std::size_t(begin) * n;
          float* positions = x.data() + offset;
          float* fields = field.data() + offset;
          float* slice_spins = spins_on_device + offset;
          if (sa) {
            // Local fields F = S J (J symmetric) at the start of a round; later chunks
            // start from the evaluation's fresh F, which also resets the drift of the
            // incremental updates for non-integer J.
            if (first_step == 0)
              backend.gemm(Transpose::no, Transpose::no, rows, n, n, 1.0f, positions, n, j_matrix, n, 0.0f, fields, n);
            for (int k = first_step; k < last_step; ++k) {
              // Geometric schedule from beta_start to beta_end over the round.
              const double progress = steps > 1 ? double(k) / (steps - 1) : 1.0;
              const auto beta = static_cast<float>(result.beta_start *
                                                   std::pow(double(result.beta_end) / result.beta_start, progress));
              backend.run(MetropolisSweepOp{positions, fields, j_matrix, beta, options.seed, std::uint64_t(k),
                                            round_key, static_cast<std::uint32_t>(begin), n},
                          rows);
            }
          } else if (oim) {
            float* cosines = y.data() + offset;
            float* slice_sines = sines.data() + offset;
            float* slice_sin_field = sin_field.data() + offset;
            for (int k = first_step; k < last_step; ++k) {
              backend.gemm(Transpose::no, Transpose::no, rows, n, n, 1.0f, cosines, n, j_matrix, n, 0.0f, fields, n);
              backend.gemm(Transpose::no, Transpose::no, rows, n, n, 1.0f, slice_sines, n, j_matrix, n, 0.0f,
                           slice_sin_field, n);
              const float injection = oim_injection * static_cast<float>(double(k + 1) / steps);
              backend.run(OimStepOp{positions, cosines, slice_sines, slice_spins, fields, slice_sin_field, injection,
                                    result.dt},
                          static_cast<std::int64_t>(rows) * n);
            }
          } else {
            float* momenta = y.data() + offset;
            const float* gemm_input = discrete ? slice_spins : positions;
            for (int k = first_step; k < last_step; ++k) {
              backend.gemm(Transpose::no, Transpose::no, rows, n, n, 1.0f, gemm_input, n, j_matrix, n, 0.0f, fields, n);
              // sign(x): dSB's next GEMM input at every step; bSB's only for the evaluation.
              const bool write_signs = discrete || k + 1 == last_step;
              backend.run(SbStepOp{positions, momenta, fields, write_signs ? slice_spins : nullptr,
                                   sb_detuning(options.a0, k, steps), options.a0, result.c0, result.dt, n},
                          static_cast<std::int64_t>(rows) * n);
            }
          }
          backend.gemm(Transpose::no, Transpose::no, rows, n, n, 1.0f, slice_spins, n, j_matrix, n, 0.0f, fields, n);
        });
      }
      result.steps_done += last_step - first_step;

      const auto evaluation_start = Clock::now();
      backend.copy_to_host(host_spins.data(), spins_on_device, states_count * sizeof(float));
      backend.copy_to_host(host_fields.data(), field.data(), states_count * sizeof(float));
      const int candidate = lowest_energy(host_spins, host_fields, replicas, n, result.final_energies);
      std::vector<std::int8_t> spins(static_cast<std::size_t>(n));
      const float* row = host_spins.data() + std::size_t(candidate) * n;
      for (int i = 0; i < n; ++i) spins[i] = row[i] > 0.0f ? 1 : -1;
      const double energy = ising_energy(problem, spins.data());  // exact, in double
      if (energy < best_energy) {
        best_energy = energy;
        result.time_to_best_s = seconds_since(start);
        result.best_round = round;
        result.best_replica = candidate;
        result.best_step = last_step;
        result.best_spins = gauged ? restore_gauge(spins.data(), original.spins) : spins;
      }
      result.evaluation_seconds += seconds_since(evaluation_start);
      if (options.time_limit_s > 0 && seconds_since(start) >= options.time_limit_s) {
        result.time_limit_reached = true;
        break;
      }
    }
  }
  result.seconds = seconds_since(start);
  // The energy of the original problem, recomputed from the returned spins.
  result.best_energy = ising_energy(original, result.best_spins.data());
  result.spin_updates_per_s =
      result.seconds > 0 ? double(original.spins) * replicas * double(result.steps_done) / result.seconds : 0.0;
  return result;
}

}  // namespace eqprop
