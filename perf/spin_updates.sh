#!/usr/bin/env bash
# Spin-update throughput of the SB solver on a 2000-spin dense random +-1 instance
# (K2000-like: every pair coupled, weight +1 or -1 with probability 1/2; the real
# K2000 file is not on these machines), many replicas, as a fraction of the
# machine's GEMM peak.
#
# Then both SB paths (engine/maxcut_solver.h) on a small dense +-1 instance with many
# replicas, where the fused block kernel is meant to win on a GPU: spin updates/s of
# --path fused and --path gemm, and their ratio.
#
# Usage: perf/spin_updates.sh [device] [replicas] [steps]   (default cpu 256 100)
#   EQPROP_BIN  the eqprop binary (default build/eqprop)
#   SMALL_N, SMALL_REPLICAS, SMALL_STEPS  the small instance (default 200, 1024, 2000)
# Napkin math: an SB step of R replicas is one GEMM (R, n) x (n, n): 2 n^2 R FLOP,
# i.e. 2n FLOP per spin update; everything else is O(n R) per step. So
#   fraction_of_peak = spin_updates_per_s * 2n / peak_flops,
# with peak_flops the backend's best measured square sgemm rate (`eqprop bench`
# prints it as peak_gflops). The published GPU anchor: 8.3e10 spin updates/s (dSB,
# K2000 size, 512 replicas, FP16, GH200).
# Appends the bench line, the solver lines and a summary to perf/results/spin_updates.jsonl.
source "$(dirname "$0")/solve_paths.sh"
device="${1:-cpu}"
replicas="${2:-256}"
steps="${3:-100}"
need_eqprop
n=2000
instance="${TMPDIR:-/tmp}/eqprop_k2000_like_seed1.txt"
dense_pm1_instance "$n" "$instance"  # 1,999,000 lines
results=perf/results/spin_updates.jsonl
mkdir -p perf/results
run_header spin_updates '"instance": "K2000-like dense +-1, n=2000, awk srand(1)"' | tee -a "$results"
bench=$("$bin" bench --device "$device" --repeats 3 --warmup 1)
echo "$bench" | tee -a "$results"
runs=()
for method in dsb bsb; do
  # One evaluation at the end: the throughput of the integration itself.
  json=$("$bin" solve --problem maxcut --graph "$instance" --method "$method" --replicas "$replicas" \
           --steps "$steps" --evaluations 1 --seed 1 --device "$device")
  echo "$json" | tee -a "$results"
  runs+=("$json")
done
python3 - "$bench" "${runs[@]}" <<'PY' | tee -a "$results"
import json, sys
bench = json.loads(sys.argv[1])
peak = bench["peak_gflops"] * 1e9
for run in (json.loads(a) for a in sys.argv[2:]):
    gemm_flops = run["spin_updates_per_s"] * 2 * run["n"]
    print(json.dumps({"summary": "spin updates/s vs GEMM peak", "method": run["method"], "backend": run["backend"],
                      "replicas": run["replicas"], "steps": run["steps"], "best_cut": run["best_cut"],
                      "spin_updates_per_s": round(run["spin_updates_per_s"]), "gemm_gflops": round(gemm_flops / 1e9, 2),
                      "peak_gflops": round(bench["peak_gflops"], 2), "fraction_of_peak": round(gemm_flops / peak, 4),
                      "seconds": round(run["seconds"], 3), "evaluation_seconds": round(run["evaluation_seconds"], 3),
                      "setup_seconds": round(run["setup_seconds"], 3),
                      # The integration alone (the evaluation at the end excluded):
                      "integration_fraction_of_peak": round(
                          gemm_flops * run["seconds"] / (run["seconds"] - run["evaluation_seconds"]) / peak, 4)}))
PY

# The small instance: fused block path against GEMM path.
small_n="${SMALL_N:-200}"
small_replicas="${SMALL_REPLICAS:-1024}"
small_steps="${SMALL_STEPS:-2000}"
small="${TMPDIR:-/tmp}/eqprop_dense_pm1_n${small_n}_seed1.txt"
dense_pm1_instance "$small_n" "$small"
solve_both_paths "$small" dsb "$small_replicas" "$small_steps"
python3 - "${path_runs[@]}" <<'PY' | tee -a "$results"
import json, sys
fused, gemm = (json.loads(a) for a in sys.argv[1:])
rate = lambda run: run["n"] * run["replicas"] * run["steps_done"] / (run["seconds"] - run["evaluation_seconds"])
print(json.dumps({"summary": "small instance: fused block path vs GEMM path", "method": fused["method"],
                  "backend": fused["backend"], "n": fused["n"], "replicas": fused["replicas"], "steps": fused["steps"],
                  "fused_spin_updates_per_s": round(rate(fused)), "gemm_spin_updates_per_s": round(rate(gemm)),
                  "fused_over_gemm": round(rate(fused) / rate(gemm), 3),
                  "best_cut_fused": fused["best_cut"], "best_cut_gemm": gemm["best_cut"]}))
PY
