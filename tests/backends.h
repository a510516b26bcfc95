// Engine-versus-reference test bodies run once per backend: CPU always, CUDA where
// a GPU is present (skipped, not passed, where not; tests/skip.h). A body is a
// doctest TEST_CASE_TEMPLATE over EQPROP_EACH_BACKEND, so each backend is its own
// case, "name<cpu>" and "name<cuda>", and a skipped CUDA case cannot hide the CPU
// one. The bit-exact CPU/CUDA claims stay in the parity suites of tests/cuda/.
#pragma once

#include <doctest/doctest.h>

#include <type_traits>

#include "tests/skip.h"

namespace eqprop {
namespace test {

struct OnCpu {
  static constexpr const char* name = "cpu";
};
struct OnCuda {
  static constexpr const char* name = "cuda";
};

// True, after marking the case skipped, where Tag's backend cannot run here; the
// first statement of a per-backend body: `if (skip_without_backend<Tag>()) return;`.
template <class Tag>
bool skip_without_backend() {
  if constexpr (std::is_same_v<Tag, OnCuda>) return skip_without_gpu();
  return false;
}

}  // namespace test
}  // namespace eqprop

TYPE_TO_STRING_AS("cpu", eqprop::test::OnCpu);
TYPE_TO_STRING_AS("cuda", eqprop::test::OnCuda);

#define EQPROP_EACH_BACKEND eqprop::test::OnCpu, eqprop::test::OnCuda
