// `eqprop solve`: the many-replica Ising / MAX-CUT solver (engine/maxcut_solver.h)
// on a problem file (hosttools/gset_reader.h), as one command line:
//
//   eqprop solve --problem maxcut --graph FILE     [options]
//   eqprop solve --problem ising  --couplings FILE [options]
//   options: --method bsb|dsb|sa|oim (dsb)  --replicas R (64)  --steps K (1000; SA: sweeps)
//            --rounds N (1)  --seed S (1)  --time-limit SEC  --device auto|cpu|cuda (auto)
//            --out FILE  --dt DT (bSB 0.9, dSB 0.5 of the stability limit)  --c0 C0 (0.5 / (<J> sqrt(n)))  --evaluations E (10)
//            --path auto|fused|gemm (auto: fused for small n; bsb and dsb only)
//
// Prints one JSON line: problem, file, n, edges, method, replicas, steps, rounds,
// seed, best_cut (maxcut only), best_energy, time_to_best_s, seconds,
// spin_updates_per_s, backend, device, and the details of the run (steps_done,
// rounds_done, time_limit_reached, setup_seconds, best_round, best_replica, c0, dt
// and path ("fused_block" or "gemm": engine/maxcut_solver.h) or beta_start and
// beta_end). --out FILE receives the best assignment, one
// value 1 or -1 per line for nodes 1..n.
//
// Exit codes as every eqprop command: 2 for a usage error (printed here), and the
// library's typed errors (DataError for a bad file: 1) are left to the caller,
// hosttools/cli.cpp, which prints them.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace eqprop {

// args[0] is "solve".
int command_solve(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace eqprop
