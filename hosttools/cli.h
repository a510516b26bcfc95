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

// What run_cli prints when `command` runs out of memory: the batch-size hint only
// where a training.batch_size sets the footprint, never for solve, sweep or landscape.
std::string out_of_memory_message(const std::string& command);

}  // namespace eqprop
