// The eqprop command line, as a function so tests can drive it in-process:
// eqprop train | eval | gradcheck | bench | config | help.
// Exit codes: 0 success, 1 a runtime error (data, checkpoint, device), 2 a usage or
// config error, 3 training diverged.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace eqprop {

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace eqprop
