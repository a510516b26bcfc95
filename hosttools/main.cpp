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
// its generic "Prescott" SSE3 kernels, about 4x slower than its AVX-512 ones. The
// core is chosen when the library loads, from OPENBLAS_CORETYPE, so where the
// user has not set it and the CPU has the instructions, we set it and re-execute
// once. Tests and library users are unaffected.
void select_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("EQPROP_BLAS_SELECTED")) return;
  const char* core = openblas_get_corename();
  if (!core || std::strcmp(core, "Prescott") != 0) return;
  __builtin_cpu_init();
  const char* better = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    better = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    better = "Haswell";
  }
  if (!better) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  setenv("EQPROP_BLAS_SELECTED", "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the generic core
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argv);
  const std::vector<std::string> args(argv + 1, argv + argc);
  return eqprop::run_cli(args, std::cout, std::cerr);
}
