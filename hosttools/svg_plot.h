// Plots written as standalone SVG files, so that a sweep's or a run's result is a
// picture a person can open anywhere, with no plotting library to install. The
// layout is hosttools/plot_scene's; the PNG of the same scene is hosttools/png_image's.
#pragma once

#include <string>
#include <vector>

#include "hosttools/plot_scene.h"

namespace eqprop {

// The scene as an SVG document.
std::string scene_to_svg(const PlotScene& scene);

// One line plot (lay_out_line_plot on a 720x440 canvas) as an SVG document.
std::string line_plot_svg(const std::vector<PlotSeries>& series, const PlotOptions& options);

}  // namespace eqprop
