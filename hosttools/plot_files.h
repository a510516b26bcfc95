// A plot written as two files, `stem`.svg and `stem`.png, from one scene: the SVG
// for documents, the PNG for people who would rather open an image.
#pragma once

#include <string>
#include <vector>

#include "hosttools/plot_scene.h"

namespace eqprop {

// Writes stem.svg and stem.png atomically.
void write_plot_files(const std::string& stem, const PlotScene& scene);

// One line plot (a 720x440 canvas) as stem.svg and stem.png.
void write_line_plot_files(const std::string& stem, const std::vector<PlotSeries>& series,
                           const PlotOptions& options);

}  // namespace eqprop
