// Bit-for-bit comparisons of per-layer arrays (one vector per layer), shared by the
// fused block tests (tests/test_fused_relaxation_block.cpp and
// tests/test_fused_oscillator_block.cpp).
#pragma once

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace eqprop {
namespace test {

// Whether every layer's values have the same bits (and the same layer and unit counts).
inline bool same_bits_per_layer(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return false;
    for (std::size_t k = 0; k < a[i].size(); ++k)
      if (bits_of(a[i][k]) != bits_of(b[i][k])) return false;
  }
  return true;
}

// check_bit_exact on each layer of a fused body's result against its expectation.
inline void check_layers_bit_exact(const std::string& what, const std::vector<std::vector<float>>& actual,
                                   const std::vector<std::vector<float>>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    check_bit_exact(what + ", layer " + std::to_string(i), actual[i], expected[i],
                    " (a missing barrier or a changed summation order?)");
}

}  // namespace test
}  // namespace eqprop
