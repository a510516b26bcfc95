# What the perf scripts share (sourced first, not run): strict mode, the
# repository root as the working directory, the eqprop binary and the header line
# that opens a run in a results file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# bin: the eqprop binary, $EQPROP_BIN or build/eqprop; need_eqprop builds it with
# scripts/build.sh if it is not there.
bin="${EQPROP_BIN:-build/eqprop}"
need_eqprop() { [ -x "$bin" ] || bash scripts/build.sh; }

# run_header RUN [FIELDS]: the JSON line that opens run RUN: the date, commit,
# CPU, thread count and load average, then FIELDS ('"key": value, ...') if given.
run_header() {
  printf '{"run": "%s", "date": "%s", "commit": "%s", "cpu": "%s", "threads": %s, "loadavg_start": "%s"%s}\n' \
    "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "${2:+, $2}"
}
