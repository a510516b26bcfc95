// The one way the tests compare a result with its tolerance: every check reports
// how much of its budget it used, so a passing test still shows how close it came,
// and the CPU/CUDA parity tests take their budget from the Determinism an op
// declares (kernels/determinism.h) rather than from a literal.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/determinism.h"

namespace eqprop {
namespace test {

// |error| <= tolerance for an error measure (a difference, a norm, a worst case);
// reports the fraction of the tolerance used. NaN fails.
inline void check_within(const std::string& what, double error, double tolerance) {
  const double used = std::fabs(error) / tolerance;
  MESSAGE(what << " = " << error << " (tolerance " << tolerance << "): " << used * 100.0
               << "% of the tolerance used");
  CHECK_MESSAGE(used <= 1.0, what << " = " << error << " exceeds its tolerance " << tolerance);
}

// |actual[i] - expected[i]| <= budget[i] for every i (NaN must meet NaN); reports the
// worst element's fraction of its budget and, on failure, the first one outside it.
template <class Expected>
void check_within(const std::string& what, const std::vector<float>& actual, const std::vector<Expected>& expected,
                  const std::vector<double>& budget) {
  REQUIRE(actual.size() == expected.size());
  REQUIRE(budget.size() == expected.size());
  if (actual.empty()) return;
  double worst = 0.0;
  std::size_t worst_index = 0, failures = 0, first_failure = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double want = static_cast<double>(expected[i]);
    double used;
    if (std::isnan(want) || std::isnan(actual[i])) {
      used = std::isnan(want) && std::isnan(actual[i]) ? 0.0 : std::numeric_limits<double>::infinity();
    } else {
      const double error = std::fabs(double(actual[i]) - want);
      used = error == 0.0 ? 0.0 : error / budget[i];
    }
    if (used > worst) worst = used, worst_index = i;
    if (!(used <= 1.0) && failures++ == 0) first_failure = i;
  }
  MESSAGE(what << ": worst element " << worst_index << " used " << worst * 100.0 << "% of its tolerance ("
               << budget[worst_index] << ")");
  CHECK_MESSAGE(failures == 0, what << ": " << failures << " of " << actual.size()
                                    << " elements out of tolerance; first at " << first_failure << ": "
                                    << actual[first_failure] << " vs " << static_cast<double>(expected[first_failure])
                                    << ", tolerance " << budget[first_failure]);
}

// The same with one absolute budget for every element.
template <class Expected>
void check_within(const std::string& what, const std::vector<float>& actual, const std::vector<Expected>& expected,
                  double budget) {
  check_within(what, actual, expected, std::vector<double>(expected.size(), budget));
}

// |got - want| <= absolute + relative |want|, reported as check_within.
inline void check_close(const std::string& what, double got, double want, double relative, double absolute = 0.0) {
  check_within(what + " - " + std::to_string(want), got - want, absolute + relative * std::fabs(want));
}

// A statistical check: |estimate - expected| <= 5 sigma, reported as check_within.
inline void check_within_sigmas(const std::string& what, double estimate, double expected, double sigma) {
  check_within(what + " - expected " + std::to_string(expected) + " (5 sigma)", estimate - expected, 5.0 * sigma);
}

// The bit pattern of a float (NaN payloads and signed zeros included).
inline std::uint32_t bits_of(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

// Bit-for-bit equality of two float arrays (the tolerance of a bit-exact kernel);
// on failure names the first mismatch, and `hint` says what usually causes one.
inline void check_bit_exact(const std::string& what, const std::vector<float>& actual,
                            const std::vector<float>& expected, const std::string& hint = "") {
  REQUIRE(actual.size() == expected.size());
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < actual.size(); ++i)
    if (bits_of(actual[i]) != bits_of(expected[i]) && mismatches++ == 0) first = i;
  CHECK_MESSAGE(mismatches == 0, what << ": " << mismatches << " of " << actual.size()
                                      << " elements differ bitwise; first at " << first << ": "
                                      << (actual.empty() ? 0.0f : actual[first]) << " vs "
                                      << (expected.empty() ? 0.0f : expected[first]) << hint);
}

// A few ulp of single precision at magnitude `scale`: the budget of an ulp_bounded op.
inline double few_ulp(double scale) { return 8.0 * std::numeric_limits<float>::epsilon() * scale; }

// The largest fraction of the elements of a statistical op's output that may
// differ between backends (a discrete outcome moved by a few-ulp difference).
constexpr double kStatisticalMismatchFraction = 1e-4;

// Two backends' outputs of one op agree as the op's declared Determinism promises:
// bit_exact bit for bit; ulp_bounded within few_ulp(magnitude); exact up to
// reduction order within 1e-5 magnitude (magnitude: the sum of |terms|);
// statistical bit for bit except a kStatisticalMismatchFraction of the elements.
template <class Op>
void check_declared_agreement(const std::string& what, const std::vector<float>& actual,
                              const std::vector<float>& expected, double magnitude = 1.0,
                              const std::string& hint = "") {
  static_assert(declares_determinism_v<Op>, "the op must declare its Determinism (kernels/determinism.h)");
  REQUIRE(actual.size() == expected.size());
  switch (Op::determinism) {
    case Determinism::bit_exact:
      check_bit_exact(what, actual, expected, hint);
      return;
    case Determinism::ulp_bounded:
    case Determinism::exact_up_to_reduction_order: {
      double worst = 0;
      for (std::size_t i = 0; i < actual.size(); ++i) {
        const double difference = std::fabs(double(actual[i]) - double(expected[i]));
        worst = std::isnan(difference) ? std::numeric_limits<double>::infinity() : std::max(worst, difference);
      }
      check_within(what + ": worst difference", worst,
                   Op::determinism == Determinism::ulp_bounded ? few_ulp(magnitude) : 1e-5 * magnitude);
      return;
    }
    case Determinism::statistical: {
      std::size_t differ = 0;
      for (std::size_t i = 0; i < actual.size(); ++i) differ += bits_of(actual[i]) != bits_of(expected[i]);
      check_within(what + ": elements that differ", double(differ),
                   kStatisticalMismatchFraction * double(actual.size()));
      return;
    }
  }
}

}  // namespace test
}  // namespace eqprop
