#!/usr/bin/env bash
# A training step on a machine whose cores are shared: `eqprop bench` of CONFIG with
# the default thread count, alternately on its own and with another process
# busy-looping (one spinning shell, which the scheduler may move between cores),
# ROUNDS times each, interleaved so that drift in the machine's speed hits both
# alike. Prints each pair, then the medians and their ratio (busy / alone); appends
# the lines to perf/results/busy_core.jsonl.
#
# Usage: perf/busy_core.sh [CONFIG] [ROUNDS] [REPEATS] [BENCH ARGS...]
#   defaults: configs/fashion_mnist.json, 7 rounds, 200 timed batches per bench.
#   BENCH ARGS go to `eqprop bench`, e.g. --set training.threads=2 to pin the team
#   (the default, auto, tunes it: engine/thread_team.h); each pair also prints the
#   team size the tuner ended at (`team`).
#   EQPROP_BIN: the eqprop binary (default build/eqprop).
source "$(dirname "$0")/common.sh"
config="${1:-configs/fashion_mnist.json}"
rounds="${2:-7}"
repeats="${3:-200}"
bench_args=("${@:4}")
[ -f "$config" ] || { echo "busy_core.sh: no such config: $config" >&2; exit 2; }
need_eqprop
results=perf/results/busy_core.jsonl
mkdir -p perf/results

# "MS TEAM": the median ms per batch and the final team size (null on a GPU).
bench_ms() {
  "$bin" bench --config "$config" --repeats "$repeats" --warmup 5 "${bench_args[@]}" |
    /usr/bin/python3 -c 'import json, sys
r = json.load(sys.stdin); team = r.get("thread_team") or {}
print(r["ms_per_batch"], json.dumps(team.get("final")))'
}

spinner=""
stop_spinner() { [ -z "$spinner" ] || kill "$spinner" 2> /dev/null || true; spinner=""; }
trap stop_spinner EXIT

run_header busy_core "\"config\": \"$config\", \"rounds\": $rounds, \"repeats\": $repeats, \"bench_args\": \"${bench_args[*]}\"" | tee -a "$results"
alone=() busy=()
for ((round = 1; round <= rounds; ++round)); do
  read -r alone_ms alone_team < <(bench_ms)
  sh -c 'while :; do :; done' &
  spinner=$!
  read -r busy_ms busy_team < <(bench_ms)
  stop_spinner
  alone+=("$alone_ms") busy+=("$busy_ms")
  printf '{"round": %d, "alone_ms": %s, "busy_ms": %s, "alone_team": %s, "busy_team": %s}\n' \
    "$round" "$alone_ms" "$busy_ms" "$alone_team" "$busy_team" | tee -a "$results"
done
/usr/bin/python3 - "${alone[*]}" "${busy[*]}" <<'PY' | tee -a "$results"
import json, statistics, sys
alone, busy = ([float(v) for v in a.split()] for a in sys.argv[1:])
print(json.dumps({"summary": "ms per batch, median over rounds",
                  "alone_ms": round(statistics.median(alone), 3), "busy_ms": round(statistics.median(busy), 3),
                  "busy_over_alone": round(statistics.median(busy) / statistics.median(alone), 3)}))
PY
