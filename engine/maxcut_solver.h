// The many-replica Ising / MAX-CUT solver: R independent replicas of ballistic or
// discrete simulated bifurcation (kernels/simulated_bifurcation.h), of simulated
// annealing (kernels/metropolis_sweep.h) or of an oscillator Ising machine
// (kernels/oscillator_ising.h) run on a Backend for K steps (SB or OIM steps, or
// annealing sweeps); the energy of every replica is evaluated at regular points of
// the run, and the best assignment seen is kept, with its energy recomputed exactly
// on the host (models/ising_problem.h) and the time it was first reached.
//
// solve_ising is the loop over rounds, evaluations and the time limit; each method
// is a SolverStrategy (engine/solver_strategy.h) that starts a round, advances its
// replicas over a range of steps and hands back their spins S and fields F = S J.
// Flow of one round (all replicas start afresh, keyed on (seed, round)):
//   strategy: start_round (random initial state)
//   K steps in ranges: strategy advance (SB: F = X J (GEMM), SbStepOp; SA:
//     MetropolisSweepOp at beta_k; OIM: two GEMMs, OimStepOp), the clock looked at
//     between ranges when there is a time limit
//   every ceil(K / evaluations) steps: F = S J (strategy compute_fields), copy S
//   and F to the host, E_r = -1/2 s_r . f_r for every replica, recompute the
//   lowest exactly in double from the sparse couplings, keep the best.
//
// Two paths for bSB / dSB, the same equations, pump schedule and initial state
// (engine/simulated_bifurcation_strategy.h): gemm (one GEMM for all replicas and
// one elementwise pass per step) and fused_block (kernels/fused_sb_block.h: one
// block per replica, its state in shared memory, a range of steps per launch).
// SolverPath::automatic picks fused_block for n <= fused_sb_max_spins(backend):
// never on the CPU (measured: OpenBLAS's GEMM reuses J across replicas and was
// faster at every size with 16+ replicas), n <= 192 on a GPU (J then stays in each
// SM's L1); the evidence is at its definition. The result reports the path taken.
// SA and OIM have only their own (non-fused) path.
//
// Under mpirun (engine/distributed.h) each rank runs its contiguous share of the
// replicas, keyed by their global numbers, so that the ranks' replicas are those
// of one process with the same seed and count; the best is then reduced over the
// ranks (lowest energy, first seen, lowest global replica: the single process's
// choice) and broadcast, so every rank returns the result of 1 rank. With a time
// limit each rank stops at its own point (it is the ranks' longest time that is
// reported, their fewest steps). A replica's steps do not depend on the others:
// the CPU GEMM gives each row the same bits whatever the rows beside it (checked
// by tests/test_distributed.cpp at one thread per rank).
//
// Fields h are absorbed by one extra spin (absorb_fields), so the kernels only see J.
// Determinism: a seed gives the same result on a given backend and thread count
// (the CPU GEMM of a slice is deterministic; SB's op is bit-exact), with or without
// a time limit that is not reached. A limit that is reached stops the run at a
// point that depends on the machine's speed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "models/ising_problem.h"

namespace eqprop {

enum class SolverMethod { bsb, dsb, sa, oim };

// "bsb", "dsb", "sa" or "oim"; ConfigError otherwise.
SolverMethod parse_solver_method(const std::string& name);
std::string solver_method_name(SolverMethod method);

// How bSB / dSB run (see above): automatic, or forced.
enum class SolverPath { automatic, fused_block, gemm };

// "auto", "fused" or "gemm"; ConfigError otherwise.
SolverPath parse_solver_path(const std::string& name);
// "auto", "fused_block" or "gemm".
std::string solver_path_name(SolverPath path);

// The largest problem (spins, after absorbing fields) for which SolverPath::automatic
// picks the fused path on this backend.
int fused_sb_max_spins(const Backend& backend);

// The largest problem the dense solvers take: J is (n, n) floats on the device.
constexpr int kMaxDenseSpins = 16384;

struct SolverOptions {
  SolverMethod method = SolverMethod::dsb;
  int replicas = 64;
  int steps = 1000;         // per round: SB steps, or SA sweeps
  int rounds = 1;           // independent restarts (fresh random starts), run one after another
  std::uint64_t seed = 1;
  // > 0: a limit on the whole solve, setup included. The clock is looked at between
  // ranges of steps that take about 1/64 of it; past the limit the run stops,
  // evaluates the replicas where they are and returns the best seen
  // (time_limit_reached).
  double time_limit_s = 0;
  int evaluations = 10;     // evaluation points per round (the last is at the end)
  SolverPath path = SolverPath::automatic;  // bSB / dSB only; fused_block with SA or OIM is a ConfigError
  // SB (Goto et al. 2021). c0 <= 0 picks 0.5 / (<J> sqrt(n)) (Goto et al. 2019).
  // dt <= 0 picks a fraction of the integrator's stability limit (default_sb_dt):
  // 0.9 for bSB, 0.5 for dSB.
  float dt = 0.0f;
  float a0 = 1.0f;
  float c0 = 0.0f;
  float initial_amplitude = 0.1f;  // x, y start uniform in [-amplitude, amplitude)
  // SA: beta from beta_start to beta_end, geometrically over the sweeps of a round.
  // <= 0 picks a rule of thumb in the manner of D-Wave's dwave-neal sampler (its
  // default beta range): a hot start where the costliest flip
  // (dE = 2 max_i sum_j |J_ij|) is accepted with probability 1/2, a cold end where
  // a flip of dE = 2 min |J_ij| (over nonzero J) is accepted with probability 1/100.
  float beta_start = 0.0f;
  float beta_end = 0.0f;
};

struct SolverResult {
  double best_energy = 0.0;              // E of the original problem (fields included)
  std::vector<std::int8_t> best_spins;   // (n) +1 / -1
  int best_round = 0;
  int best_replica = 0;
  std::int64_t best_step = 0;            // steps into its round when it was seen
  double time_to_best_s = 0.0;           // since the solve started (after setup)
  double seconds = 0.0;                  // the whole solve, evaluations included
  double setup_seconds = 0.0;            // building and uploading J, allocation
  double evaluation_seconds = 0.0;       // of `seconds`: copying states back and evaluating energies
  std::int64_t steps_done = 0;           // over all rounds (each step updates every replica)
  int rounds_done = 0;                   // rounds begun
  bool time_limit_reached = false;       // the time limit stopped the run before its end
  double spin_updates_per_s = 0.0;       // n * replicas * steps_done / seconds
  SolverPath path = SolverPath::gemm;    // the path taken: fused_block or gemm
  // (replicas) the energy of every replica at the last evaluation (the end of the
  // last round run): how often the replicas reach a given energy. From a float
  // GEMM: exact for integer couplings, to float rounding otherwise.
  std::vector<double> final_energies;
  // The parameters used (defaults resolved).
  float c0 = 0.0f;
  float dt = 0.0f;
  float beta_start = 0.0f;
  float beta_end = 0.0f;
};

// Runs the solver. Throws ConfigError for options out of range and DataError for a
// problem too large for the dense path (kMaxDenseSpins).
SolverResult solve_ising(Backend& backend, const IsingProblem& problem, const SolverOptions& options);

// The default SB coupling scale 0.5 / (<J> sqrt(n)) for a dense J (n, n); 0 if J = 0.
float default_sb_c0(const std::vector<float>& dense, int n);
// The default SB time step, a fraction of the integrator's stability limit. Early in
// the run (a(t) ~ 0, positions small) bSB is linear: x'' = a0 (-(a0 - a) x + c0 J x).
// Along an eigenvector of J with eigenvalue lambda < 0 that is an oscillator of
// angular frequency w = sqrt(a0 (a0 - a + c0 |lambda|)), and symplectic Euler is
// stable only for dt w < 2. With rho the spectral radius of J every mode is stable
// for dt < dt_max = 2 / sqrt(a0 (a0 + c0 rho)). A J = -w of a graph with positive
// weights has lambda_min ~ -(mean degree): G1 has dt_max ~ 0.94, and at dt = 1 every
// replica blew up into a near-uniform state (cut 29 of 11624). For +-1 dense
// K2000-like instances dt_max ~ 1.41; Goto et al. 2021 use 1.25 there.
// Defaults (64 replicas x 2000 steps on G1, G2, G11, G14, G22, G43): bSB 0.9 dt_max
// (bSB's cuts did not change between 0.5 and 0.9 dt_max); dSB 0.5 dt_max (dSB's
// field J sign(x) is not small early on, and its cuts on G1, G2 and G14 were best
// at 0.4-0.6 dt_max and lost up to 100 at 0.9 dt_max, with G11, G22, G43 unchanged).
float default_sb_dt(const std::vector<float>& dense, int n, float a0, float c0, float fraction_of_limit);

// The default SA inverse temperatures (see SolverOptions) for a dense J (n, n).
void default_sa_betas(const std::vector<float>& dense, int n, float& beta_start, float& beta_end);

}  // namespace eqprop
