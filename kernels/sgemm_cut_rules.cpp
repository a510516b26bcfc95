#include "kernels/sgemm_cut_rules.h"

#include <cblas.h>

namespace eqprop {
namespace {

SgemmCutRules rules_for(const char* core) {
  const std::string name = core ? core : "";
  for (const char* avx512 : {"SkylakeX", "Cooperlake", "SapphireRapids"})
    if (name == avx512) return {name, 16, true, 4, true};
  for (const char* avx2 : {"Haswell", "Zen"})
    if (name == avx2) return {name, 12, false, 12, false};
  return {name, 0, false, 0, false};
}

}  // namespace

const SgemmCutRules& sgemm_cut_rules() {
  static const SgemmCutRules rules = rules_for(openblas_get_corename());
  return rules;
}

}  // namespace eqprop
