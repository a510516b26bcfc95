#!/usr/bin/env bash
# The GPU check: builds eqprop for the local GPU, runs the CUDA test suites and the
# benchmark suite, and writes one JSON-lines file and a Markdown table. Meant to
# finish in under 10 minutes on an H100 or H200 (16 cores). With 2 or more GPUs and
# mpirun it also trains on 2 ranks (sums on the device with NCCL) against 1 GPU and
# spreads the solver's replicas over 2 ranks.
#
# Usage: perf/gpu_check.sh [results_dir]        (default perf/results/gpu_check/)
#   GPU_CHECK_DEVICE     cuda (default) or cpu: a dry run of the same commands on the
#                        CPU backend, at shrunken sizes, on a machine without a GPU
#   GPU_CHECK_BUILD_DIR  build directory (default build-gpu-check; an existing one is
#                        rebuilt incrementally)
#   GPU_CHECK_PREBUILT   1: configure and build nothing; run the eqprop and eqprop_tests
#                        already in GPU_CHECK_BUILD_DIR (built on another machine, e.g.
#                        one with the build dependencies, for a GPU node that has only
#                        the CUDA libraries; their shared libraries must resolve, see
#                        `ldd`). The tests are skipped where eqprop_tests is absent.
#   GPU_CHECK_ARCH       CUDA architectures (default: the GPU's compute capability
#                        from nvidia-smi, e.g. 90; else "native")
#   GPU_CHECK_BUDGET_S   wall-clock seconds after which the remaining checks are
#                        recorded as skipped (default 540)
#   GPU_CHECK_GSET_DIR   G-set graphs for the solver (default ../shared/gset beside the repository;
#                        random graphs in G-set format are written where it is absent)
#
# Writes: results_dir/gpu_check.jsonl (one line per check: an environment line, the
# build, the test summary, then every eqprop bench / solve line with "check" and
# "rc" added) and results_dir/gpu_check.md; the build log and each check's stderr
# beside them. Exit status: 1 without a GPU (one line saying so), 2 when a build
# dependency is missing (one line naming them), 3 when the build fails, else 0 with
# failed checks recorded as "rc" != 0.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"

device="${GPU_CHECK_DEVICE:-cuda}"
results="${1:-perf/results/gpu_check}"
build="${GPU_CHECK_BUILD_DIR:-build-gpu-check}"
budget="${GPU_CHECK_BUDGET_S:-540}"
gset_dir="${GPU_CHECK_GSET_DIR:-../shared/gset}"
started=$SECONDS
case "$device" in cuda | cpu) ;; *) echo "gpu_check: GPU_CHECK_DEVICE must be cuda or cpu, got '$device'" >&2; exit 2 ;; esac

# --- the GPU ------------------------------------------------------------------
gpu_name="none" compute_cap="" driver=""
if [ "$device" = cuda ]; then
  if ! query=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader 2>/dev/null | head -1) ||
     [ -z "$query" ]; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or lists no device); GPU_CHECK_DEVICE=cpu runs a CPU dry run" >&2
    exit 1
  fi
  IFS=',' read -r gpu_name compute_cap driver <<< "$query"
  gpu_name=$(echo "$gpu_name" | xargs) compute_cap=$(echo "$compute_cap" | xargs) driver=$(echo "$driver" | xargs)
  if ! command -v nvcc > /dev/null; then
    echo "gpu_check: nvcc not found (looked on PATH and in /usr/local/cuda/bin); the CUDA backend cannot be built" >&2
    exit 1
  fi
  arch="${GPU_CHECK_ARCH:-}"
  if [ -z "$arch" ]; then
    arch=$(echo "$compute_cap" | tr -d '.')
    [[ "$arch" =~ ^[0-9]+$ ]] || arch=native
  fi
else
  arch="${GPU_CHECK_ARCH:-}"
fi

prebuilt="${GPU_CHECK_PREBUILT:-0}"
case "$prebuilt" in 0 | 1) ;; *) echo "gpu_check: GPU_CHECK_PREBUILT must be 0 or 1, got '$prebuilt'" >&2; exit 2 ;; esac
bin="$build/eqprop"
mkdir -p "$results"
jsonl="$results/gpu_check.jsonl"
: > "$jsonl"
if [ "$prebuilt" = 1 ]; then
  # --- a build made elsewhere ---------------------------------------------------
  missing="" tests=ON build_seconds=0
  if ! version=$("$bin" --version 2> "$results/build.log"); then
    cat "$results/build.log" >&2
    echo "gpu_check: $bin does not run here (GPU_CHECK_PREBUILT=1; \`ldd $bin\` names a missing library)" >&2
    exit 3
  fi
  echo "$version" >> "$results/build.log"
  if [ "$device" = cuda ] && ! grep -q "CUDA backend on" <<< "$version"; then
    echo "gpu_check: $bin was built without the CUDA backend: $version" >&2
    exit 3
  fi
  if [ ! -x "$build/eqprop_tests" ]; then
    tests=OFF
    echo "gpu_check: no $build/eqprop_tests: the CUDA tests are skipped" >&2
  fi
else
  # --- what CMakeLists.txt needs ------------------------------------------------
  # A probe project asks CMake's own find_package for each dependency, so what it
  # reports missing is what the real configure would miss.
  probe=$(mktemp -d)
  trap 'rm -rf "$probe"' EXIT
  cat > "$probe/CMakeLists.txt" << 'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(eqprop_dependency_probe LANGUAGES CXX)
set(missing "")
find_package(OpenMP QUIET COMPONENTS CXX)
if(NOT OpenMP_CXX_FOUND)
  list(APPEND missing "OpenMP(libgomp/g++)")
endif()
find_package(nlohmann_json 3 QUIET)
if(NOT nlohmann_json_FOUND)
  list(APPEND missing "nlohmann_json(nlohmann-json3-dev)")
endif()
find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  list(APPEND missing "ZLIB(zlib1g-dev)")
endif()
set(BLA_VENDOR OpenBLAS)
find_package(BLAS QUIET)
find_path(CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread openblas-openmp)
if(NOT BLAS_FOUND OR NOT CBLAS_INCLUDE_DIR)
  list(APPEND missing "OpenBLAS(libopenblas-dev)")
endif()
find_package(doctest QUIET)
if(NOT doctest_FOUND)
  list(APPEND missing "doctest(doctest-dev)")
endif()
string(REPLACE ";" " " missing "${missing}")
message(STATUS "EQPROP_MISSING=${missing}")
CMAKE
  command -v cmake > /dev/null || { echo "gpu_check: missing: cmake" >&2; exit 2; }
  missing=$(cmake -S "$probe" -B "$probe/build" 2>&1 | sed -n 's/^-- EQPROP_MISSING=//p')
  required_missing=$(echo "$missing" | tr ' ' '\n' | grep -v '^doctest' | xargs)
  if [ -n "$required_missing" ]; then
    echo "gpu_check: missing: $required_missing (Debian packages in parentheses; scripts/install_deps.sh installs them)" >&2
    exit 2
  fi
  tests=ON
  if [[ "$missing" == *doctest* ]]; then
    tests=OFF
    echo "gpu_check: doctest not found: building without the test suites (-DEQPROP_BUILD_TESTS=OFF); the CUDA tests are skipped" >&2
  fi

  # --- build --------------------------------------------------------------------
  generator=()
  [ -f "$build/CMakeCache.txt" ] || ! command -v ninja > /dev/null || generator=(-G Ninja)
  echo "gpu_check: building into $build (CUDA architectures: ${arch:-as configured}, tests $tests)" >&2
  if ! { cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DEQPROP_BUILD_TESTS=$tests \
           ${arch:+-DCMAKE_CUDA_ARCHITECTURES=$arch} &&
         cmake --build "$build" --parallel "$(nproc)"; } > "$results/build.log" 2>&1; then
    tail -20 "$results/build.log" >&2
    echo "gpu_check: the build failed; the log is $results/build.log" >&2
    exit 3
  fi
  if [ "$device" = cuda ] && ! grep -q "eqprop CUDA backend: ON" "$results/build.log"; then
    echo "gpu_check: CMake built without the CUDA backend (check $results/build.log)" >&2
    exit 3
  fi
  build_seconds=$((SECONDS - started))
fi

# --- helpers ------------------------------------------------------------------
json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\n\r')"; }
# A top-level number or string field of a one-line JSON object (the first match:
# eqprop writes keys in sorted order, top-level ones before step_counts').
field() { grep -o "\"$2\":\(\"[^\"]*\"\|[^,}]*\)" <<< "$1" | head -1 | cut -d: -f2- | tr -d '"'; }
over_budget() { [ $((SECONDS - started)) -ge "$budget" ]; }

# Runs eqprop with args under `timeout`; appends its JSON line with "check" and
# "rc" added, or a line with the error.
check() {
  local name="$1" seconds="$2"
  shift 2
  if over_budget; then
    echo "{\"check\":\"$name\",\"skipped\":\"time budget of ${budget}s spent\"}" >> "$jsonl"
    return
  fi
  local output rc
  output=$(timeout "$seconds" "$bin" "$@" 2> "$results/$name.stderr")
  rc=$?
  local line
  line=$(grep '^{' <<< "$output" | tail -1)
  if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
    echo "{\"check\":\"$name\",\"rc\":0,${line#\{}" >> "$jsonl"
  else
    local error
    error=$(tail -1 "$results/$name.stderr")
    [ "$rc" -eq 124 ] && error="timed out after ${seconds}s"
    echo "{\"check\":\"$name\",\"rc\":$rc,\"error\":$(json_string "$error"),\"command\":$(json_string "eqprop $*")}" >> "$jsonl"
  fi
  echo "gpu_check: $name rc=$rc ($((SECONDS - started))s)" >&2
}

commit=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
echo "{\"check\":\"environment\",\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"commit\":\"$commit\",\"device\":\"$device\",\"gpu\":$(json_string "$gpu_name"),\"compute_cap\":\"$compute_cap\",\"driver\":\"$driver\",\"nvcc\":$(json_string "$(nvcc --version 2> /dev/null | tail -1)"),\"cuda_architectures\":\"${arch:-as configured}\",\"cores\":$(nproc),\"tests_built\":$([ $tests = ON ] && echo true || echo false),\"missing\":$(json_string "$missing"),\"build_seconds\":$build_seconds,\"prebuilt\":$([ "$prebuilt" = 1 ] && echo true || echo false)}" >> "$jsonl"

# --- the CUDA test suites -----------------------------------------------------
# Every test case of tests/cuda/ (on a machine without a GPU they report skipped).
if [ "$tests" = ON ]; then
  test_output=$(timeout 300 "$build/eqprop_tests" --source-file='*tests/cuda/*' 2>&1)
  test_rc=$?
  echo "$test_output" > "$results/cuda_tests.log"
  echo "{\"check\":\"cuda_tests\",\"rc\":$test_rc,\"test_cases\":$(json_string "$(grep -m1 'test cases:' <<< "$test_output")"),\"assertions\":$(json_string "$(grep -m1 'assertions:' <<< "$test_output")")}" >> "$jsonl"
  echo "gpu_check: cuda_tests rc=$test_rc ($((SECONDS - started))s)" >&2
else
  echo "{\"check\":\"cuda_tests\",\"skipped\":\"doctest not found: built with -DEQPROP_BUILD_TESTS=OFF\"}" >> "$jsonl"
fi

# --- training-step benchmarks ------------------------------------------------
# On the CPU the same commands run at shrunken sizes: the dry run checks the
# commands and the output, not the numbers.
if [ "$device" = cuda ]; then
  repeats=(--repeats 20 --warmup 3)
  small=()
  # The CIFAR-10 recipe at T1 = 250, T2 = 25 takes seconds per step; 25 / 5 steps
  # keep the per-step launch pattern (counts scale with T) and finish.
  cifar_steps=(--set dynamics.t_free=25 --set dynamics.t_nudge=5 --set training.batch_size=128)
else
  # One thread: the CPU backend then runs the calls inside parallel_over_rows once,
  # as a GPU does, so the counts are the GPU's (kernels/counting_backend.h).
  export OMP_NUM_THREADS=1
  repeats=(--repeats 2 --warmup 1)
  small=(--set training.batch_size=16)
  cifar_steps=(--set dynamics.t_free=2 --set dynamics.t_nudge=1 --set training.batch_size=2)
fi
check bench_dense 120 bench --device "$device" --config configs/fashion_mnist.json "${repeats[@]}" "${small[@]}"
# The dense network's relaxation paths side by side: one launch per phase
# (training.relaxation_path = fused, kernels/fused_relaxation_block.h) against the
# GEMMs and a step op per layer and step; auto takes the GEMM path on the GPU until
# this pair says otherwise (models/dense_hopfield.cpp, fused_measured_faster).
for path in fused gemm; do
  check "bench_dense_relax_$path" 120 bench --device "$device" --config configs/fashion_mnist.json "${repeats[@]}" \
    "${small[@]}" --set training.relaxation_path=$path
done
check bench_conv_small 120 bench --device "$device" --config configs/fashion_mnist_conv.json "${repeats[@]}" "${small[@]}"
# With and without CUDA graphs (training.cuda_graphs, engine/captured_step.h): the
# same step submitted as one graph replay or as its hundreds of launches; the
# difference is the submission cost perf/gpu_step_model.md estimates. The counts of
# a replayed step are its step-parameter upload alone (the replay makes no calls).
for graphs in on off; do
  check "bench_dense_graphs_$graphs" 120 bench --device "$device" --config configs/fashion_mnist.json "${repeats[@]}" \
    "${small[@]}" --set training.cuda_graphs=$graphs
  check "bench_dense_fused_graphs_$graphs" 120 bench --device "$device" --config configs/fashion_mnist.json \
    "${repeats[@]}" "${small[@]}" --set training.relaxation_path=fused --set training.cuda_graphs=$graphs
  check "bench_conv_small_graphs_$graphs" 120 bench --device "$device" --config configs/fashion_mnist_conv.json \
    "${repeats[@]}" "${small[@]}" --set training.cuda_graphs=$graphs
  # The per-step random keys read from the step-parameter block: Langevin noise,
  # and the hardware model's DAC writes and ADC reads (stochastic rounding, noise).
  check "bench_dense_noise_graphs_$graphs" 120 bench --device "$device" --config configs/fashion_mnist.json \
    "${repeats[@]}" "${small[@]}" --set dynamics.noise=0.02 --set training.cuda_graphs=$graphs
  check "bench_dense_hardware_graphs_$graphs" 120 bench --device "$device" --config configs/fashion_mnist.json \
    "${repeats[@]}" "${small[@]}" --set hardware.dac.enabled=true --set hardware.dac.rounding=stochastic \
    --set hardware.adc.enabled=true --set hardware.adc.noise_sigma=0.5 --set training.cuda_graphs=$graphs
done
# The CIFAR-10 recipe's convolutions on the library (cuDNN; oneDNN in the dry run)
# against im2col + the GEMM, at each precision. oneDNN has no tf32: the dry run
# records that pair as skipped.
for precision in fp32 tf32 bf16; do
  for path in library im2col; do
    name="bench_cifar10_conv4_${precision}_$path"
    if [ "$device" = cpu ] && [ "$precision" = tf32 ] && [ "$path" = library ]; then
      echo "{\"check\":\"$name\",\"skipped\":\"oneDNN has no tf32 convolutions (CPU dry run)\"}" >> "$jsonl"
      continue
    fi
    check "$name" 150 bench --device "$device" --config configs/cifar10_conv4_laborieux.json "${cifar_steps[@]}" \
      --set training.gemm_precision=$precision --set training.conv_path=$path --repeats 3 --warmup 1
  done
done
check bench_oscillator 120 bench --device "$device" --config configs/fashion_mnist_oscillator.json "${repeats[@]}" "${small[@]}"
# The oscillator network's relaxation paths side by side (kernels/fused_oscillator_block.h
# against four GEMMs per coupling and a step op per layer and step); auto takes the
# GEMM path until this pair says otherwise (models/oscillator_network.cpp).
for path in fused gemm; do
  check "bench_oscillator_relax_$path" 120 bench --device "$device" --config configs/fashion_mnist_oscillator.json \
    "${repeats[@]}" "${small[@]}" --set training.relaxation_path=$path
done
# The Ising network's annealing paths side by side (kernels/fused_ising_block.h, one
# launch per phase, against two GEMMs and an update op per layer and sweep); auto
# takes the GEMM path until this pair says otherwise (models/ising_network.cpp).
for path in fused gemm; do
  check "bench_ising_relax_$path" 120 bench --device "$device" --config configs/fashion_mnist_ising.json \
    "${repeats[@]}" "${small[@]}" --set training.relaxation_path=$path
done
check bench_ising 120 bench --device "$device" --config configs/fashion_mnist_ising.json "${repeats[@]}" "${small[@]}"

# --- the MAX-CUT solver: fused-block and GEMM paths --------------------------
# The fused path runs one block per replica for all steps (auto takes it up to 192
# spins on a GPU, engine/maxcut_solver.cpp); the GEMM path one GEMM and one
# elementwise op per step. Dense random +-1 graphs around that crossover, then the
# G-set sizes (800, 2000, 5000 spins).
graphs="$results/graphs"
mkdir -p "$graphs"
dense_graph() {  # n: a complete graph with random +-1 weights, G-set format
  local file="$graphs/dense_pm1_n$1.txt"
  [ -s "$file" ] || awk -v n="$1" 'BEGIN { srand(1); print n, n * (n - 1) / 2;
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) print i, j, (rand() < 0.5 ? 1 : -1) }' > "$file"
  echo "$file"
}
sparse_graph() {  # n name: the G-set file where present, else a random graph of 4n unit edges
  if [ -s "$gset_dir/$2.txt" ]; then echo "$gset_dir/$2.txt"; return; fi
  local file="$graphs/random_n$1.txt"
  [ -s "$file" ] || awk -v n="$1" 'BEGIN { srand(2); m = 4 * n; print n, m;
    for (e = 0; e < m; e++) { i = 1 + int(rand() * n); j = 1 + (i + int(rand() * (n - 1))) % n; print i, j, 1 } }' > "$file"
  echo "$file"
}
if [ "$device" = cuda ]; then
  replicas=256
  instances=("$(dense_graph 64)" "$(dense_graph 128)" "$(dense_graph 192)" "$(dense_graph 256)" "$(dense_graph 512)"
             "$(sparse_graph 800 G1)" "$(sparse_graph 2000 G22)" "$(sparse_graph 5000 G55)")
else
  replicas=8
  instances=("$(dense_graph 64)" "$(sparse_graph 800 G1)")
fi
for graph in "${instances[@]}"; do
  n=$(head -1 "$graph" | awk '{ print $1 }')
  # About 2e11 multiply-adds of J x per path on the GPU, clamped to [20, 2000] steps.
  steps=$(awk -v n="$n" -v r="$replicas" -v d="$device" 'BEGIN { s = (d == "cuda" ? 2e11 : 2e7) / (n * n * r);
    s = s < 20 ? 20 : (s > 2000 ? 2000 : s); printf "%d", s }')
  for path in fused gemm; do
    check "solve_n${n}_$path" 60 solve --problem maxcut --graph "$graph" --method dsb --replicas "$replicas" \
      --steps "$steps" --evaluations 1 --seed 1 --device "$device" --path "$path"
  done
done

# --- several GPUs: data-parallel ranks, NCCL sums ------------------------------
# With 2 or more GPUs and mpirun: the same short training on 1 GPU and on 2 ranks
# (one GPU each; the contrastive update and the metrics summed on the device with
# NCCL, the train header says which path), and the solver's replicas spread over 2
# ranks. The 2-rank NCCL test case of tests/cuda/ ran above with the CUDA tests.
gpus=0
[ "$device" = cuda ] && gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU')
mpirun_2=(mpirun --allow-run-as-root --oversubscribe -np 2)
# ranks name args...: one JSON line with the run's seconds, sums path and accuracy.
check_train_ranks() {
  local ranks="$1" name="$2" dir="$results/$2"
  shift 2
  if over_budget; then
    echo "{\"check\":\"$name\",\"skipped\":\"time budget of ${budget}s spent\"}" >> "$jsonl"
    return
  fi
  rm -rf "$dir"
  local launcher=() start=$SECONDS rc
  [ "$ranks" -gt 1 ] && launcher=("${mpirun_2[@]}")
  timeout 300 "${launcher[@]}" "$bin" train "$@" --out "$dir" > "$results/$name.stdout" 2> "$results/$name.stderr"
  rc=$?
  local record sums
  record=$(head -1 "$dir/metrics.jsonl" 2> /dev/null)
  sums=$(grep -o 'sums on the [^)]*' "$results/$name.stdout" | head -1)
  echo "{\"check\":\"$name\",\"rc\":$rc,\"ranks\":$ranks,\"wall_seconds\":$((SECONDS - start)),\"sums\":$(json_string "${sums:-single rank}"),\"epoch_seconds\":$(field "$record" seconds | sed 's/^$/null/'),\"test_acc\":$(field "$record" test_acc | sed 's/^$/null/')}" >> "$jsonl"
  echo "gpu_check: $name rc=$rc ($((SECONDS - started))s)" >&2
}
if [ "$gpus" -ge 2 ] && command -v mpirun > /dev/null; then
  if [ -s /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    train_args=(--config configs/fashion_mnist.json --device cuda --set training.epochs=1 --set data.train_limit=12000
                --set data.test_limit=2000)
    check_train_ranks 1 train_1gpu "${train_args[@]}"
    check_train_ranks 2 train_2gpu_nccl "${train_args[@]}"
  else
    echo '{"check":"train_2gpu_nccl","skipped":"Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist"}' >> "$jsonl"
  fi
  graph="$(sparse_graph 2000 G22)"
  for ranks in 1 2; do
    launcher=()
    [ "$ranks" = 2 ] && launcher=("${mpirun_2[@]}")
    name="solve_ranks$ranks"
    if over_budget; then
      echo "{\"check\":\"$name\",\"skipped\":\"time budget of ${budget}s spent\"}" >> "$jsonl"
      continue
    fi
    line=$(timeout 120 "${launcher[@]}" "$bin" solve --problem maxcut --graph "$graph" --method dsb --replicas 512 \
      --steps 1000 --seed 1 --device cuda 2> "$results/$name.stderr" | grep '^{' | tail -1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
      echo "{\"check\":\"$name\",\"rc\":0,\"ranks\":$ranks,${line#\{}" >> "$jsonl"
    else
      echo "{\"check\":\"$name\",\"rc\":${rc/#0/1},\"error\":$(json_string "$(tail -1 "$results/$name.stderr")")}" >> "$jsonl"
    fi
  done
else
  echo "{\"check\":\"multi_gpu\",\"skipped\":\"$gpus GPU(s) (the 2-rank checks need 2) or no mpirun\"}" >> "$jsonl"
fi

# --- the Markdown summary -----------------------------------------------------
# The rows of one table of gpu_check.md: the checks whose name starts with $1, a
# failed one as its error and the empty cells $2, a passed one as function $3 prints it.
table_rows() {
  local line name
  while read -r line; do
    name=$(field "$line" check)
    case "$name" in "$1"*) ;; *) continue ;; esac
    if [ "$(field "$line" rc)" != 0 ]; then
      echo "| $name | failed: $(field "$line" error) $2"
      continue
    fi
    "$3" "$line" "$name"
  done < "$jsonl"
}
bench_row() {
  local line=$1 name=$2
  printf '| %s | %s | %s | %s/%s | %.3f | %s | %s | %s | %s | %s | %.1f | %.3f |\n' "$name" "$(field "$line" backend)" \
    "$(field "$line" batch)" \
    "$(field "$line" t_free)" "$(field "$line" t_nudge)" "$(field "$line" ms_per_batch)" "$(field "$line" launches)" \
    "$(field "$line" blas_calls)" "$(field "$line" host_syncs)" "$(field "$line" bytes_copied)" \
    "$(field "$line" bytes_moved_estimate)" "$(field "$line" gflops | sed 's/null/0/')" \
    "$(field "$line" fraction_of_peak | sed 's/null/0/')"
}
solve_row() {
  local line=$1 name=$2
  printf '| %s | %s | %s | %s | %s | %s | %.4f | %.3g | %s |\n' "$name" "$(field "$line" backend)" \
    "$(field "$line" n)" "$(field "$line" replicas)" \
    "$(field "$line" steps_done)" "$(field "$line" path)" "$(field "$line" seconds)" \
    "$(field "$line" spin_updates_per_s)" "$(field "$line" best_cut)"
}
{
  echo "# GPU check: $gpu_name ($device), commit $commit, $(date -u +%Y-%m-%d)"
  echo
  echo "Training steps (\`eqprop bench\`; counts per step from the counting backend):"
  echo
  echo "| check | backend | batch | T1/T2 | ms/batch | launches | BLAS calls | host syncs | bytes copied | bytes moved (est.) | GFLOP/s | of peak |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  table_rows bench_ "||||||||||" bench_row
  echo
  echo "MAX-CUT solver (\`eqprop solve --method dsb\`):"
  echo
  echo "| check | backend | n | replicas | steps | path | seconds | spin updates/s | best cut |"
  echo "|---|---|---|---|---|---|---|---|---|"
  table_rows solve_ "||||||||" solve_row
  echo
  grep '"check":"train_[12]gpu\|"check":"solve_ranks' "$jsonl" | sed 's/^/Several GPUs: /'
  echo
  grep '"check":"cuda_tests"' "$jsonl" | sed 's/^/CUDA tests: /'
  grep '"skipped"' "$jsonl" | sed 's/^/skipped: /'
} > "$results/gpu_check.md"
echo "gpu_check: wrote $jsonl and $results/gpu_check.md in $((SECONDS - started))s" >&2
