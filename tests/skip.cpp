// The bookkeeping of tests/skip.h: a doctest listener counts the cases that ran
// and those that called skip_case_if.
#include "tests/skip.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "kernels/backend.h"

namespace eqprop {
namespace test {
namespace {

struct SkipCounts {
  std::string current_case;
  int cases_run = 0;
  int cases_skipped = 0;
  bool current_skipped = false;
};

SkipCounts& counts() {
  static SkipCounts instance;
  return instance;
}

// Only test_case_start and test_case_end matter; the rest of doctest's reporter
// interface is ignored (the console reporter still prints everything).
class SkipListener : public doctest::IReporter {
 public:
  explicit SkipListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& data) override {
    counts().current_case = data.m_name;
    counts().current_skipped = false;
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {
    ++counts().cases_run;
    if (counts().current_skipped) ++counts().cases_skipped;
  }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("eqprop_skips", 1, SkipListener);

}  // namespace

bool skip_case_if(bool condition, const std::string& reason) {
  if (!condition) return false;
  counts().current_skipped = true;
  std::printf("EQPROP_TEST_SKIPPED: %s: %s\n", counts().current_case.c_str(), reason.c_str());
  std::fflush(stdout);
  return true;
}

bool skip_without_gpu() { return skip_case_if(!cuda_device_available(), "no CUDA GPU on this machine"); }

int exit_code_after_skips(int doctest_result) {
  const SkipCounts& c = counts();
  if (c.cases_skipped > 0) {
    std::printf("[eqprop] %d of the %d test cases run were skipped\n", c.cases_skipped, c.cases_run);
    std::fflush(stdout);
  }
  if (doctest_result == 0 && c.cases_run > 0 && c.cases_skipped == c.cases_run) return kSkipExitCode;
  return doctest_result;
}

}  // namespace test
}  // namespace eqprop
