#!/usr/bin/env bash
# MAX-CUT on G-set instances with `eqprop solve` (CPU backend), best cut against the
# best-known cut of ../shared/gset/best_known.csv, with replicas, steps and wall time.
#
# Usage: perf/gset_results.sh [methods]     methods: a comma list of bsb, dsb, sa (default dsb,bsb)
#   EQPROP_BIN  the eqprop binary (default build/eqprop; built by scripts/build.sh if absent)
#   GSET_DIR    the G-set folder (default ../shared/gset)
# Appends to perf/results/gset.jsonl: a header line (date, commit, CPU, threads, load
# average: timings on a shared machine are only as good as the load lets them be),
# then one line per run: the solver's JSON (eqprop solve) plus instance,
# best_known, gap (best_known - best_cut), ratio and wall_s (the whole command,
# reading the file included). Prints a Markdown table at the end.
#
# Settings: 128 replicas x 5000 steps on the 800- and 1000-node graphs, 64 x 5000
# on G22 (2000 nodes): about 1.5 minutes per method on an idle 2-core machine.
# SA ("sa") sweeps a dense J per replica and is several times slower per spin
# update than SB on these sparse graphs; it runs 32 replicas x 2000 sweeps.
source "$(dirname "$0")/common.sh"
gset="${GSET_DIR:-../shared/gset}"
methods="${1:-dsb,bsb}"
need_eqprop
[ -d "$gset" ] || { echo "no G-set folder at $gset (set GSET_DIR)" >&2; exit 1; }
results=perf/results/gset.jsonl
mkdir -p perf/results
run_header gset_results "\"methods\": \"$methods\"" | tee -a "$results"

lines=()
for method in ${methods//,/ }; do
  for spec in "G1 128 5000" "G2 128 5000" "G11 128 5000" "G14 128 5000" "G43 128 5000" "G22 64 5000"; do
    read -r instance replicas steps <<< "$spec"
    if [ "$method" = sa ]; then replicas=32; steps=2000; fi
    start=$(date +%s.%N)
    json=$("$bin" solve --problem maxcut --graph "$gset/$instance.txt" --method "$method" \
             --replicas "$replicas" --steps "$steps" --seed 1 --device cpu)
    end=$(date +%s.%N)
    line=$(python3 - "$json" "$instance" "$gset/best_known.csv" "$start" "$end" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import csv, json, sys
run = json.loads(sys.argv[1])
instance, csv_path = sys.argv[2], sys.argv[3]
best_known = None
with open(csv_path) as f:
    for row in csv.DictReader(f):
        if row["instance"] == instance:
            best_known = int(row["best_known_cut"])
out = {"instance": instance, "best_known": best_known}
out.update(run)
out["gap"] = None if best_known is None else best_known - run["best_cut"]
out["ratio"] = None if best_known is None else round(run["best_cut"] / best_known, 5)
out["wall_s"] = round(float(sys.argv[5]) - float(sys.argv[4]), 3)
out["loadavg_1min_end"] = float(sys.argv[6])
print(json.dumps(out))
PY
)
    echo "$line" | tee -a "$results"
    lines+=("$line")
  done
done

python3 - "${lines[@]}" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print()
print("| instance | n | edges | method | replicas x steps | best cut | best known | gap | time to best (s) | wall (s) | spin updates/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['instance']} | {r['n']} | {r['edges']} | {r['method']} | {r['replicas']} x {r['steps']} | {r['best_cut']} | "
          f"{r['best_known']} | {r['gap']} | {r['time_to_best_s']:.1f} | {r['wall_s']:.1f} | {r['spin_updates_per_s']:.3g} |")
PY
