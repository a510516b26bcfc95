#!/usr/bin/env bash
# Strong scaling of `eqprop solve` over CPU ranks: the same replicas (same seed and
# count, hence the same best cut and spins) run by 1 process and by N MPI ranks of
# one OpenMP thread each, each rank running its share of the replicas; the runs
# alternate, `repeats` of each. Appends one line per run and a summary line (median
# seconds, speedup) to perf/results/scaling/solve_ranks.jsonl.
# usage: perf/solve_ranks.sh [GRAPH] [RANKS] [REPLICAS] [STEPS] [REPEATS]
#        (defaults: G22 from $GSET_DIR or ../shared/gset beside the repository, 2 ranks, 32 replicas, 500 steps, 3)
# EQPROP_BIN picks the binary (default build/eqprop). The seconds are the solve's
# own (after setup), the longest over the ranks. On a machine whose cores other jobs
# share, N ranks get fewer than N cores: the loadavg of the header says how busy it was.
# shellcheck source=perf/common.sh
source "$(dirname "$0")/common.sh"
graph=${1:-${GSET_DIR:-../shared/gset}/G22.txt}
ranks=${2:-2}
replicas=${3:-32}
steps=${4:-500}
repeats=${5:-3}
need_eqprop
out=perf/results/scaling/solve_ranks.jsonl
mkdir -p "$(dirname "$out")"
args=(solve --problem maxcut --graph "$graph" --method dsb --replicas "$replicas" --steps "$steps" --seed 1
      --device cpu --evaluations 2)
mpirun_n=(mpirun --allow-run-as-root --oversubscribe --mca btl "self,vader" -x OMP_NUM_THREADS=1 -np "$ranks")
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
run_header solve_ranks "\"graph\": \"$(basename "$graph")\", \"ranks\": $ranks, \"replicas\": $replicas, \"steps\": $steps, \"repeats\": $repeats" | tee -a "$out"
for ((r = 0; r < repeats; ++r)); do
  for n in 1 "$ranks"; do
    if [ "$n" = 1 ]; then line=$(OMP_NUM_THREADS=1 "$bin" "${args[@]}"); else line=$("${mpirun_n[@]}" "$bin" "${args[@]}"); fi
    python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print(json.dumps({"ranks": int(sys.argv[2]), "seconds": d["seconds"], "spin_updates_per_s": d["spin_updates_per_s"],
                  "best_cut": d["best_cut"], "best_replica": d["best_replica"], "loadavg": sys.argv[3]}))' \
      "$line" "$n" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out" "$lines"
  done
done
python3 - "$lines" "$ranks" <<'PY' | tee -a "$out"
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
ranks = int(sys.argv[2])
one = statistics.median(r["seconds"] for r in runs if r["ranks"] == 1)
many = statistics.median(r["seconds"] for r in runs if r["ranks"] == ranks)
cuts = {(r["best_cut"], r["best_replica"]) for r in runs}
print(json.dumps({"summary": "solve_ranks", "median_seconds_1_rank": one, f"median_seconds_{ranks}_ranks": many,
                  "speedup": one / many, "efficiency": one / many / ranks, "same_best_cut_and_replica": len(cuts) == 1}))
PY
