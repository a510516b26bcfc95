# Shared by perf/sb_path_crossover.sh and perf/spin_updates.sh (sourced, not run):
# the dense random +-1 MAX-CUT instances and a solver run on both SB paths, with
# perf/common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# dense_pm1_instance N FILE: writes the complete graph on N vertices with weights
# +-1 (awk's srand(1): the same file on every run) to FILE unless it is there.
dense_pm1_instance() {
  [ -s "$2" ] && return 0
  awk -v n="$1" 'BEGIN { srand(1); print n, n * (n - 1) / 2;
                        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) print i, j, (rand() < 0.5 ? 1 : -1) }' > "$2"
}

# solve_both_paths GRAPH METHOD REPLICAS STEPS: `eqprop solve` ($bin, $device) on
# the fused block path, then on the GEMM path; appends each JSON line to $results
# and leaves the two in the array path_runs (fused first).
solve_both_paths() {
  local path json
  path_runs=()
  for path in fused gemm; do
    json=$("$bin" solve --problem maxcut --graph "$1" --method "$2" --replicas "$3" \
             --steps "$4" --evaluations 1 --seed 1 --device "$device" --path "$path")
    echo "$json" | tee -a "$results"
    path_runs+=("$json")
  done
}
