// Honest skips: a test case that cannot run here (no CUDA GPU, a data set that is
// not installed) says why and is reported as skipped, not as passed.
//
// doctest 2.4 has no dynamic skip, so the case returns early after calling
// skip_case_if, which prints a marker line with the reason to stdout (doctest shows
// MESSAGE only on failure) and records the case as skipped. A run in which every
// executed case skipped and nothing failed exits with kSkipExitCode (tests/test_main.cpp),
// which CMakeLists.txt declares as the SKIP_RETURN_CODE of every discovered test,
// so ctest prints it as "Skipped". A failure makes doctest's exit code 1, so a case
// that skips can never hide one; call skip_case_if first in a case, before any check.
#pragma once

#include <string>

namespace eqprop {
namespace test {

// The exit code of a run that skipped everything it ran (the automake convention).
constexpr int kSkipExitCode = 77;

// If `condition`, prints "EQPROP_TEST_SKIPPED: <case>: <reason>" and marks the running case
// as skipped; returns `condition` so a case reads `if (skip_case_if(...)) return;`.
bool skip_case_if(bool condition, const std::string& reason);

// skip_case_if(no CUDA GPU is visible, ...): the guard of every case that needs one.
bool skip_without_gpu();

// The exit code for doctest's result: kSkipExitCode when it is 0 and every case
// that ran was skipped; `doctest_result` otherwise. Also reports the skip count.
int exit_code_after_skips(int doctest_result);

}  // namespace test
}  // namespace eqprop
