#!/usr/bin/env bash
# Where the fused-block SB path (one block per replica, all steps in one launch)
# stops beating the GEMM path (one GEMM + one elementwise op per step): both paths on
# dense random +-1 instances of n spins, for a few replica counts; the evidence for
# the CPU threshold of SolverPath::automatic (engine/maxcut_solver.cpp).
#
# Usage: perf/sb_path_crossover.sh [device] [method]   (default cpu dsb)
#   EQPROP_BIN  the eqprop binary (default build/eqprop)
#   SIZES, REPLICAS  space-separated lists (default "32 64 128 256 500 1000 2000", "16 64 256")
# Steps per run: about 4e9 / (n^2 R) (a few 1e9 multiply-adds), clamped to [20, 20000].
# Appends one line per run and a summary per (n, R) to perf/results/sb_path_crossover.jsonl.
source "$(dirname "$0")/solve_paths.sh"
device="${1:-cpu}"
method="${2:-dsb}"
sizes="${SIZES:-32 64 128 256 500 1000 2000}"
replica_counts="${REPLICAS:-16 64 256}"
need_eqprop
results=perf/results/sb_path_crossover.jsonl
mkdir -p perf/results
run_header sb_path_crossover "\"method\": \"$method\", \"device\": \"$device\"" | tee -a "$results"
for n in $sizes; do
  instance="${TMPDIR:-/tmp}/eqprop_dense_pm1_n${n}_seed1.txt"
  dense_pm1_instance "$n" "$instance"
  for replicas in $replica_counts; do
    steps=$(python3 -c "print(max(20, min(20000, round(4e9 / ($n * $n * $replicas)))))")
    solve_both_paths "$instance" "$method" "$replicas" "$steps"
    python3 - "${path_runs[@]}" <<'PY' | tee -a "$results"
import json, sys
fused, gemm = (json.loads(a) for a in sys.argv[1:])
# The integration alone: the one evaluation at the end is the same for both paths.
time = lambda run: run["seconds"] - run["evaluation_seconds"]
print(json.dumps({"summary": "fused_block vs gemm", "method": fused["method"], "backend": fused["backend"],
                  "n": fused["n"], "replicas": fused["replicas"], "steps": fused["steps"],
                  "fused_s": round(time(fused), 4), "gemm_s": round(time(gemm), 4),
                  "fused_spin_updates_per_s": round(fused["n"] * fused["replicas"] * fused["steps"] / time(fused)),
                  "gemm_spin_updates_per_s": round(gemm["n"] * gemm["replicas"] * gemm["steps"] / time(gemm)),
                  "gemm_over_fused_time": round(time(gemm) / time(fused), 3),
                  "best_cut_fused": fused["best_cut"], "best_cut_gemm": gemm["best_cut"]}))
PY
  done
done
