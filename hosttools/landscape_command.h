// `eqprop landscape`: how many minima the free energy of a trained network has
// around its inputs, as the dynamics reach them (engine/landscape.h):
//
//   eqprop landscape --checkpoint DIR [--samples N (10)] [--starts K (16)]
//                    [--integrator fixed_point|gradient_flow|csb] [--steps T]
//                    [--split test|train] [--seed S (1)] [--out FILE.csv]
//                    [--data DIR] [--device ...] [--set key=value ...]
//
// For each of the first N samples of the split: a free phase from the reset state
// and from K random states (noise off, the checkpoint's dynamics unless
// --integrator / --steps / --set say otherwise). Prints one JSON line (samples,
// starts, integrator, steps, minima_mean, minima_max, gap_mean, samples_with_gap,
// unsettled_starts: end states that one more step still moves, so that too few
// steps do not pass for extra minima) and writes one CSV row per sample to --out:
// sample, label, minima, lowest_energy, reset_energy, gap, reset_visits, unsettled,
// energies (';'-separated, lowest first), visits; and beside it FILE.svg, the minima
// and the starts ending in the reset state's minimum per sample.
// Dense and convolutional Hopfield checkpoints (states in [0, 1]).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace eqprop {

// args[0] is "landscape".
int command_landscape(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace eqprop
