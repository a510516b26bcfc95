// `eqprop sweep`: trains one run per value of a config key (and per named variant),
// and writes the results as CSV, JSON lines and SVG plots:
//
//   eqprop sweep --config FILE --sweep KEY=V1,V2,... [--with KEY=V1,V2,...]...
//                [--variant NAME:KEY=VALUE]... [--out DIR] [--device ...] [--set KEY=VALUE]...
//
// --with changes another key along with the swept one, value for value; a variant
// is a named set of overrides (repeat --variant with the same NAME for several).
// DIR (default runs/sweep) gets sweep.csv, sweep.jsonl, sweep_test_acc.svg,
// sweep_free_energy.svg and one run directory per point; running the same sweep
// again resumes unfinished runs and reuses finished ones.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace eqprop {

// args[0] is "sweep".
int command_sweep(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace eqprop
