#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz into build-fuzz/ (clang, ASan+UBSan,
# CUDA off) and runs each for SECONDS (default 30) from its seed corpus. An
# allocation over 1 GiB (-malloc_limit_mb) or a process over 2 GiB counts as a
# finding like a crash, a sanitizer report or a hang (-timeout), so a buffer sized
# by a header before the file backs it is found. Fails on any finding; the input
# that found it is left in build-fuzz/findings/.
# Needs clang, libclang-rt-14-dev (libFuzzer) and libomp-dev (the project's OpenMP).
# Usage: bash tests/fuzz/run_fuzzers.sh [SECONDS]
set -euo pipefail
seconds="${1:-30}"
cd "$(dirname "$0")/../.."

targets=(fuzz_idx_reader fuzz_cifar10_reader fuzz_gset_reader fuzz_ising_couplings fuzz_safetensors)
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DEQPROP_ENABLE_CUDA=OFF -DEQPROP_BUILD_TESTS=OFF -DEQPROP_BUILD_FUZZERS=ON > /dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"

rm -rf build-fuzz/seeds build-fuzz/findings
python3 tests/fuzz/write_seed_corpus.py build-fuzz/seeds
mkdir -p build-fuzz/findings
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=()
for target in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$target"  # grows across runs; the seeds are re-added each time
  mkdir -p "$corpus"
  log="build-fuzz/$target.log"
  status=0
  "build-fuzz/tests/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -max_len=131072 -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$target-" \
    "$corpus" "build-fuzz/seeds/$target" > "$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "$target: FINDING after $runs runs (exit $status); see $log and build-fuzz/findings/"
    grep -m3 -E "ERROR|SUMMARY|runtime error" "$log" || true
  else
    echo "$target: $runs runs in ${seconds}s, no finding"
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "findings in: ${failed[*]}"
  exit 1
fi
