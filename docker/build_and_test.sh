#!/usr/bin/env bash
# Builds the CPU image for real, without a Docker daemon, and runs it:
#   1. a Debian 12 base: debootstrap (minbase) from the mirror apt on this machine is
#      configured with, tarred without device nodes; cached between runs;
#   2. Charliecloud: import the base, `ch-image build` docker/Dockerfile.cpu (its build
#      stage compiles eqprop and runs the test suite inside the image);
#   3. inside the image: `eqprop --version`, a two-epoch FashionMNIST training run (the
#      host's data set bound at /data) and a G-set solve.
# Prints the time of each stage; any failure is one line naming the stage, and a
# non-zero exit.
#
#   bash docker/build_and_test.sh [WORK_DIR]   (default: ~/.cache/eqprop-image)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work="${1:-${HOME:-/root}/.cache/eqprop-image}"
mkdir -p "$work"
export USER="${USER:-$(id -un)}"
# ch-image is a Python script that needs Debian's python3 (with python3-lark), not a
# python3 of a virtual environment or pyenv earlier on the PATH.
export PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"
export CH_IMAGE_STORAGE="$work/storage"
log="$work/build.log"
: > "$log"

stage_start=0
stage() {  # stage NAME: starts timing a stage
  current="$1"
  stage_start=$(date +%s.%N)
  echo "== $current"
}
stage_done() {
  printf '   %s: %.1f s\n' "$current" "$(echo "$(date +%s.%N) - $stage_start" | bc)"
}
fail() {
  echo "docker/build_and_test.sh: stage '$current' failed: $1 (log: $log)" >&2
  tail -20 "$log" >&2 || true
  exit 1
}

current=setup
trap 'fail "\"$BASH_COMMAND\" exited with status $?"' ERR

for tool in debootstrap ch-image ch-run bc; do
  command -v "$tool" > /dev/null || { current=setup; fail "$tool is not installed (bash scripts/install_deps.sh --containers installs it)"; }
done

# The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list).
debian_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         /(^|\n)Suites:[^\n]*bookworm([ \n]|$)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); print a[2]; exit } }' "$file"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' || true
}

base_tar="$work/bookworm-minbase.tar.gz"
stage "base image (debootstrap bookworm)"
if [ -s "$base_tar" ]; then
  echo "   cached: $base_tar"
else
  mirror=$(debian_mirror | awk 'NR == 1')
  [ -n "$mirror" ] || fail "no Debian bookworm mirror found in /etc/apt/sources.list*"
  echo "   mirror: the one apt uses (from /etc/apt sources)"
  rootfs="$work/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >> "$log" 2>&1 ||
    fail "debootstrap could not build the base (is the mirror reachable? is the disk full?)"
  # Updates and security fixes for the image's own apt, as on the host.
  security=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
             grep -o 'http[^ ]*debian-security' | awk 'NR == 1' || true)
  [ -z "$security" ] || echo "deb $security bookworm-security main" >> "$rootfs/etc/apt/sources.list"
  echo "deb $mirror bookworm-updates main" >> "$rootfs/etc/apt/sources.list"
  # Never the contents of dev/, proc/, sys/: importing real device nodes makes the
  # importer read /dev/full.
  tar -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -czf "$base_tar.tmp" . >> "$log" 2>&1 ||
    fail "could not write $base_tar (disk full?)"
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
fi
stage_done

stage "import the base into Charliecloud"
ch-image import "$base_tar" eqprop-base >> "$log" 2>&1 || fail "ch-image import of $base_tar"
stage_done

commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
stage "build docker/Dockerfile.cpu (compile + test suite inside)"
# The build context: the files git tracks or would track (no build trees, runs or .git).
context="$work/context"
rm -rf "$context" && mkdir -p "$context"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - 2>> "$log") |
  tar -x -C "$context" || fail "could not copy the sources into $context (disk full?)"
ch-image build --force --no-cache -t eqprop-cpu -f "$context/docker/Dockerfile.cpu" \
  --build-arg BASE=eqprop-base --build-arg EQPROP_COMMIT="$commit" "$context" >> "$log" 2>&1 ||
  fail "ch-image build (apt inside the image needs the mirror; the build and test output is in the log)"
grep -E "tests passed|tests failed" "$log" | tail -1 | sed 's/^/   /'
stage_done

run_in_image() { ch-run --unset-env='*' --set-env=PATH=/opt/eqprop/bin:/usr/bin:/bin --set-env=EQPROP_CONTAINER=1 \
  --set-env=OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$@"; }

stage "eqprop --version inside the image"
version=$(run_in_image eqprop-cpu -- eqprop --version 2>&1) || fail "eqprop --version: $version"
echo "   $version" | head -3
echo "$version" | grep -q "$commit" || fail "the image's eqprop --version does not name commit $commit"
echo "$version" | grep -q "onednn: yes" || fail "the image's eqprop was built without oneDNN (its convolutions would run on im2col)"
stage_done

data=/usr/share/datasets/fashion-mnist
stage "two-epoch FashionMNIST training inside the image"
[ -d "$data" ] || fail "$data is missing (Debian package dataset-fashion-mnist)"
runs="$work/runs"
rm -rf "$runs" && mkdir -p "$runs"
run_in_image -b "$data:/data" -b "$runs:/runs" -c /opt/eqprop/share/eqprop eqprop-cpu -- \
  eqprop train --config configs/fashion_mnist.json --device cpu --out /runs/fashion_mnist \
  --set data.dir=/data --set training.epochs=2 --set data.train_limit=10000 --set data.test_limit=2000 >> "$log" 2>&1 ||
  fail "training inside the image"
tail -1 "$runs/fashion_mnist/metrics.jsonl" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("   epoch %d test accuracy %.2f%%" % (r["epoch"], 100*r["test_acc"]))'
stage_done

stage "a run without the data bound names the mount to add"
message=$(run_in_image -c /opt/eqprop/share/eqprop eqprop-cpu -- eqprop train --config configs/fashion_mnist.json \
  --device cpu --out /tmp/unbound --set data.dir=/data --set training.epochs=1 2>&1) && fail "training without /data bound succeeded"
echo "$message" | grep -q -- "--bind /path/on/host:/data" || fail "no bind hint in: $message"
echo "   $(echo "$message" | tail -1 | cut -c1-150)"
stage_done

stage "G-set solve inside the image"
graph=""
for candidate in ../shared/gset/G1.txt "$repo/../shared/gset/G1.txt"; do [ -f "$candidate" ] && graph=$(cd "$(dirname "$candidate")" && pwd)/G1.txt && break; done
if [ -z "$graph" ]; then  # no G-set copy beside the checkout: a small random graph
  graph="$work/random_graph.txt"
  python3 -c 'import random; random.seed(1); n=200; e=[(i,j) for i in range(1,n+1) for j in range(i+1,n+1) if random.random()<0.05]
print(n, len(e)); [print(i, j, 1) for i, j in e]' > "$graph"
fi
# Bound at /data: images are read-only, so a bind needs a mount point the image has.
result=$(run_in_image -b "$(dirname "$graph"):/data" eqprop-cpu -- \
  eqprop solve --problem maxcut --graph "/data/$(basename "$graph")" --method dsb --replicas 32 --steps 1000 --rounds 1 --device cpu 2>&1) ||
  fail "solve inside the image: $result"
echo "   $(echo "$result" | tail -1 | cut -c1-150)"
stage_done

echo "docker/build_and_test.sh: the CPU image builds, passes its tests and trains (image eqprop-cpu in $CH_IMAGE_STORAGE)"
