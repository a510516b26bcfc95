// The single doctest entry point; every tests/*.cpp registers its cases here. A run
// whose cases all skipped exits with the skip code ctest expects (tests/skip.h).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "tests/skip.h"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (context.shouldExit()) return result;
  return eqprop::test::exit_code_after_skips(result);
}
