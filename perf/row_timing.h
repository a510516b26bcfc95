// What the row-path benches (perf/pool_rows.cpp, perf/conv_rows.cpp) share: the
// best of several timed calls, and their positive integer arguments.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace eqprop::perf {

// The fastest of `repeats` calls of f, in ms (the least disturbed by other load).
template <class F>
double best_ms(int repeats, const F& f) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// argv[index] as a positive integer, `fallback` where absent; exits with 2, naming
// the program and the argument, where it is not one.
inline int positive_argument(const char* program, int argc, char** argv, int index, int fallback) {
  if (argc <= index) return fallback;
  const int value = std::atoi(argv[index]);
  if (value <= 0) {
    std::fprintf(stderr, "%s: argument %d (%s) must be a positive integer\n", program, index, argv[index]);
    std::exit(2);
  }
  return value;
}

}  // namespace eqprop::perf
