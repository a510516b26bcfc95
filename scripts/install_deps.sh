#!/usr/bin/env bash
# Installs what eqprop needs to build, test and train, from Debian's packages.
# The CUDA toolkit (nvcc, cuBLAS) is optional: where nvcc is on PATH the CUDA
# backend is built too.
set -euo pipefail

packages=(cmake g++ make ccache nlohmann-json3-dev doctest-dev zlib1g-dev libopenblas-dev
          libopenblas0-openmp libdnnl-dev dataset-fashion-mnist)
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
