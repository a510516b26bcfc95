// A plot laid out once as drawing primitives in pixel coordinates, so that the SVG
// writer (hosttools/svg_plot) and the PNG rasterizer (hosttools/png_image) draw the
// same picture from one layout: axes, ticks, labels and series are decided here only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace eqprop {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

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
  // An honest y axis: it spans at least min_y_span (0: the data's range), so that a
  // 0.2-point spread of accuracies does not fill the plot, and stays inside
  // [y_floor, y_ceiling] where those are finite (accuracy in [0, 100]).
  double min_y_span = 0;
  double y_floor = -1e300;
  double y_ceiling = 1e300;
};

// Where a panel sits in its figure, in pixels.
struct PanelBox {
  double x = 0, y = 0, width = 720, height = 440;
};

struct PlotScene {
  struct Line {
    double x0, y0, x1, y1, width;
    Rgb color;
  };
  struct Polyline {
    std::vector<double> xy;  // x0, y0, x1, y1, ...
    double width;
    Rgb color;
  };
  struct Circle {
    double cx, cy, radius;
    Rgb color;
  };
  struct Rect {
    double x, y, width, height;
    Rgb fill;          // used where filled
    bool filled;       // else a 1-pixel outline in `stroke`
    Rgb stroke;
  };
  enum class Anchor { start, middle, end };
  struct Text {
    double x, y;  // baseline point
    std::string text;
    double size;  // font size in pixels
    Anchor anchor;
    bool vertical;  // rotated 90 degrees counter-clockwise
  };

  double width = 720, height = 440;
  std::vector<Rect> rects;  // drawn first (backgrounds, frames, heat-map cells)
  std::vector<Line> lines;
  std::vector<Polyline> polylines;
  std::vector<Circle> circles;
  std::vector<Text> texts;
};

// Round tick values covering [lo, hi] with about `target` intervals (Heckbert's "nice
// numbers": steps of 1, 2 or 5 times a power of ten); the first tick is at or below
// lo and the last at or above hi.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

// The data-to-pixel mapping of a laid-out panel, for drawing more into it.
struct PanelAxes {
  double left = 0, top = 0, width = 1, height = 1;  // the plot area in pixels
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  bool log_x = false;
  double px(double x) const;
  double py(double y) const;
};

// Lays a line plot out into `scene` inside `box`: frame, nice ticks, labels, one
// polyline and markers per series, legend on the right. Returns the panel's mapping.
PanelAxes lay_out_line_plot(PlotScene& scene, const std::vector<PlotSeries>& series, const PlotOptions& options,
                       const PanelBox& box);

// The color of series k in every plot.
Rgb series_color(std::size_t k);

// Text for a tick value: as few digits as the tick step needs.
std::string tick_label(double value, double step);

}  // namespace eqprop
