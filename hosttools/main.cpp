// eqprop: the command-line client of the engine.
#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "hosttools/cli.h"

namespace {

// OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and falls back to
// its generic "Prescott" SSE3 kernels, about 4x slower than its AVX-512 ones.
// Returns the better core this CPU supports, or nullptr to keep OpenBLAS's choice.
const char* better_blas_core() {
  if (std::getenv("OPENBLAS_CORETYPE")) return nullptr;
  const char* core = openblas_get_corename();
  if (!core || std::strcmp(core, "Prescott") != 0) return nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

// OpenMP's default is to spin-wait between parallel regions. On a machine whose
// cores are shared with other processes, a spinning thread holds a core the team
// leader then waits for: a training step took 37-73 ms instead of 5 ms. Passive
// waiting (threads sleep until the next region) costs little on an idle machine.
bool choose_omp_wait_policy() {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return false;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  return true;
}

// OpenBLAS picks its kernels and libgomp its wait policy when they load, from the
// environment, before main runs. So where the user has set neither, we set them
// and re-execute once. Tests and library users are unaffected.
void prepare_runtime_environment(char** argv) {
  if (std::getenv("EQPROP_RUNTIME_PREPARED")) return;
  bool changed = choose_omp_wait_policy();
  if (const char* core = better_blas_core()) {
    setenv("OPENBLAS_CORETYPE", core, 1);
    changed = true;
  }
  if (!changed) return;
  setenv("EQPROP_RUNTIME_PREPARED", "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on as loaded
}

}  // namespace

int main(int argc, char** argv) {
  prepare_runtime_environment(argv);
  const std::vector<std::string> args(argv + 1, argv + argc);
  return eqprop::run_cli(args, std::cout, std::cerr);
}
