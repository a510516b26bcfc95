#!/usr/bin/env bash
# perf/gpu_check.sh on a build made elsewhere (GPU_CHECK_PREBUILT=1), as a CPU dry
# run: every check runs and records rc 0, the environment line says "prebuilt", and
# a directory without a runnable eqprop is refused before any check (exit 3).
# Usage: tests/gpu_check_prebuilt_dry_run.sh BUILD_DIR WORK_DIR
set -uo pipefail
build="$1" work="$2"
cd "$(dirname "$0")/.."
rm -rf "$work" && mkdir -p "$work/empty"
fail() { echo "gpu_check_prebuilt_dry_run: $*" >&2; exit 1; }

GPU_CHECK_DEVICE=cpu GPU_CHECK_PREBUILT=1 GPU_CHECK_BUILD_DIR="$build" GPU_CHECK_BUDGET_S=300 \
  bash perf/gpu_check.sh "$work/results" > "$work/stdout" 2> "$work/stderr" || fail "exit $? (see $work/stderr)"
jsonl="$work/results/gpu_check.jsonl"
grep -q '"check":"environment".*"prebuilt":true' "$jsonl" || fail "no environment line with \"prebuilt\":true in $jsonl"
grep -q '"check":"cuda_tests","rc":0' "$jsonl" || fail "the test suite did not run with rc 0"
checks=$(grep -c '"check":"\(bench\|solve\)_' "$jsonl")
[ "$checks" -ge 20 ] || fail "only $checks bench and solve checks in $jsonl"
if grep '"rc":[1-9]' "$jsonl"; then fail "a check failed"; fi
grep -q '"skipped":"time budget' "$jsonl" && fail "the dry run ran out of its time budget"
[ -s "$work/results/gpu_check.md" ] || fail "no gpu_check.md"

GPU_CHECK_DEVICE=cpu GPU_CHECK_PREBUILT=1 GPU_CHECK_BUILD_DIR="$work/empty" \
  bash perf/gpu_check.sh "$work/refused" > /dev/null 2> "$work/refused.stderr"
rc=$?
[ "$rc" = 3 ] || fail "an empty build directory gave exit $rc, not 3"
grep -q 'does not run here' "$work/refused.stderr" || fail "the refusal does not say why: $(cat "$work/refused.stderr")"
echo "gpu_check_prebuilt_dry_run: $checks checks passed; an empty build directory refused"
