#!/usr/bin/env bash
# Installs what eqprop needs to build, test and train, from Debian's packages.
# The CUDA toolkit (nvcc, cuBLAS) is optional: where nvcc is on PATH the CUDA
# backend is built too.
#   --containers  also what docker/ needs to build and run the CPU image without a
#                 Docker daemon (debootstrap, Charliecloud) and to check the others
#   --ci          also what CI runs beyond the tests: OpenMPI, clang's libFuzzer and
#                 sanitizer runtimes, and everything of --containers
set -euo pipefail

# ocl-icd-opencl-dev: Debian's oneDNN is built with its OpenCL GPU runtime, and its CMake
# package requires OpenCL's headers (only recommended by libdnnl-dev, which
# --no-install-recommends leaves out).
packages=(cmake g++ make ccache git time nlohmann-json3-dev doctest-dev zlib1g-dev libopenblas-dev
          libopenblas0-openmp libdnnl-dev ocl-icd-opencl-dev dataset-fashion-mnist openmpi-bin libopenmpi-dev)
container_packages=(debootstrap charliecloud charliecloud-builders charliecloud-runtime squashfs-tools
                    squashfuse python3-lark python3-venv shellcheck bc tar gzip)
ci_packages=(clang libclang-rt-14-dev libomp-dev)
for option in "$@"; do
  case "$option" in
    --containers) packages+=("${container_packages[@]}") ;;
    --ci) packages+=("${container_packages[@]}" "${ci_packages[@]}") ;;
    *) echo "install_deps.sh: unknown option $option (--containers, --ci)" >&2; exit 2 ;;
  esac
done
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "eqprop: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
