// A line plot written as a standalone SVG file, so that a sweep's result is a picture
// a person can open anywhere, with no plotting library to install.
#pragma once

#include <string>
#include <vector>

namespace eqprop {

struct PlotSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

struct PlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_x = false;  // log2-spaced x axis (step budgets, bit widths ...)
};

std::string line_plot_svg(const std::vector<PlotSeries>& series, const PlotOptions& options);

}  // namespace eqprop
