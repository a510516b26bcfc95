// The picture of a training run: test and training accuracy, loss, and the energy
// at the end of the free phase (its mean, range and histogram) per epoch, drawn from
// the run's metrics.jsonl into learning_curve.svg and learning_curve.png beside it.
// `train` redraws it after every epoch, so a resumed run's curve has every epoch.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hosttools/plot_scene.h"

namespace eqprop {

// The three panels (accuracy, loss, free-phase energy) of these per-epoch records
// (the objects of metrics.jsonl), side by side.
PlotScene learning_curve_scene(const std::vector<nlohmann::json>& records, const std::string& title);

// Reads run_dir/metrics.jsonl and writes run_dir/learning_curve.svg and .png
// (atomically). Returns the SVG's path, or "" when there is no record yet.
std::string write_learning_curve(const std::string& run_dir);

}  // namespace eqprop
