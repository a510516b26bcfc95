#include "hosttools/plot_scene.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace eqprop {
namespace {

// Margins of a panel: tick labels on the left, legend on the right.
constexpr double kLeft = 70, kRight = 170, kTop = 40, kBottom = 60;

// 1, 2, 5 or 10 times a power of ten, near `x` (rounded, or the next one up).
double nice_number(double x, bool round) {
  const double exponent = std::floor(std::log10(x));
  const double fraction = x / std::pow(10.0, exponent);
  double nice;
  if (round) nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
  else nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * std::pow(10.0, exponent);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  const double step = nice_number(nice_number(hi - lo, false) / std::max(1, target), true);
  std::vector<double> ticks;
  // Multiples k * step (not a running sum, whose rounding errors would add up).
  const long long first = static_cast<long long>(std::floor(lo / step + 1e-9));
  const long long last = static_cast<long long>(std::ceil(hi / step - 1e-9));
  for (long long k = first; k <= last; ++k) ticks.push_back(k == 0 ? 0.0 : static_cast<double>(k) * step);
  return ticks;
}

std::string tick_label(double value, double step) {
  if (value == 0) value = 0;  // no "-0"
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  char text[48];
  if (std::abs(value) >= 1e6 || (value != 0 && std::abs(value) < 1e-4))
    std::snprintf(text, sizeof text, "%.3g", value);
  else
    std::snprintf(text, sizeof text, "%.*f", std::min(decimals, 6), value);
  return text;
}

Rgb series_color(std::size_t k) {
  static const Rgb colors[] = {{0x1f, 0x77, 0xb4}, {0xd6, 0x27, 0x28}, {0x2c, 0xa0, 0x2c}, {0xff, 0x7f, 0x0e},
                               {0x94, 0x67, 0xbd}, {0x8c, 0x56, 0x4b}, {0x17, 0xbe, 0xcf}};
  return colors[k % (sizeof colors / sizeof colors[0])];
}

double PanelAxes::px(double x) const {
  const double t = log_x ? std::log2(std::max(x, 1e-300)) : x;
  return left + (t - x_min) / (x_max - x_min) * width;
}

double PanelAxes::py(double y) const { return top + (y_max - y) / (y_max - y_min) * height; }

PanelAxes lay_out_line_plot(PlotScene& scene, const std::vector<PlotSeries>& series, const PlotOptions& options,
                       const PanelBox& box) {
  const Rgb black{0, 0, 0}, grid{0xdd, 0xdd, 0xdd};
  auto transform_x = [&](double x) { return options.log_x ? std::log2(std::max(x, 1e-300)) : x; };
  double x_min = HUGE_VAL, x_max = -HUGE_VAL, y_min = HUGE_VAL, y_max = -HUGE_VAL;
  for (const PlotSeries& s : series)
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      x_min = std::min(x_min, transform_x(s.x[i]));
      x_max = std::max(x_max, transform_x(s.x[i]));
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
    }
  if (!(x_min <= x_max)) x_min = 0, x_max = 1;  // no finite point
  if (!(y_min <= y_max)) y_min = 0, y_max = 1;
  if (!(x_min < x_max)) x_min -= 1, x_max += 1;
  // The honest span first, then round ticks around it, then the floor and ceiling.
  if (y_max - y_min < options.min_y_span) {
    const double middle = 0.5 * (y_min + y_max);
    y_min = middle - 0.5 * options.min_y_span, y_max = middle + 0.5 * options.min_y_span;
    if (y_min < options.y_floor) y_max += options.y_floor - y_min, y_min = options.y_floor;
    if (y_max > options.y_ceiling) y_min -= y_max - options.y_ceiling, y_max = options.y_ceiling;
  }
  if (!(y_min < y_max)) y_min -= 0.5, y_max += 0.5;
  std::vector<double> y_ticks = nice_ticks(y_min, y_max, 5);
  y_ticks.erase(std::remove_if(y_ticks.begin(), y_ticks.end(),
                               [&](double t) { return t < options.y_floor - 1e-9 || t > options.y_ceiling + 1e-9; }),
                y_ticks.end());
  const double y_step = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1.0;
  y_min = std::min(y_min, y_ticks.front()), y_max = std::max(y_max, y_ticks.back());

  // x ticks: the data's own values when there are few (a sweep's points), else round
  // numbers (epochs).
  std::vector<double> x_values;
  for (const PlotSeries& s : series)
    for (double x : s.x)
      if (std::isfinite(x)) x_values.push_back(x);
  std::sort(x_values.begin(), x_values.end());
  x_values.erase(std::unique(x_values.begin(), x_values.end()), x_values.end());
  std::vector<double> x_ticks = x_values;
  double x_step = 0;
  if (x_values.size() > 10 && !options.log_x) {
    x_ticks = nice_ticks(x_min, x_max, 8);
    x_step = x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1.0;
    x_min = std::min(x_min, x_ticks.front()), x_max = std::max(x_max, x_ticks.back());
  }

  const double left = box.x + kLeft, top = box.y + kTop;
  const double plot_w = box.width - kLeft - kRight, plot_h = box.height - kTop - kBottom;
  const PanelAxes axes{left, top, plot_w, plot_h, x_min, x_max, y_min, y_max, options.log_x};
  auto px = [&](double x) { return axes.px(x); };
  auto py = [&](double y) { return axes.py(y); };

  scene.texts.push_back({box.x + box.width / 2, box.y + 22, options.title, 15, PlotScene::Anchor::middle, false});
  for (double y : y_ticks) {
    scene.lines.push_back({left - 5, py(y), left + plot_w, py(y), 1, grid});
    scene.texts.push_back({left - 8, py(y) + 4, tick_label(y, y_step), 12, PlotScene::Anchor::end, false});
  }
  for (double x : x_ticks) {
    scene.lines.push_back({px(x), top + plot_h, px(x), top + plot_h + 5, 1, black});
    const std::string label = x_step > 0 ? tick_label(x, x_step) : tick_label(x, x == std::floor(x) ? 1 : 0.001);
    scene.texts.push_back({px(x), top + plot_h + 18, label, 12, PlotScene::Anchor::middle, false});
  }
  scene.rects.push_back({left, top, plot_w, plot_h, {}, false, black});
  scene.texts.push_back({left + plot_w / 2, box.y + box.height - 15,
                         options.x_label + (options.log_x ? " (log scale)" : ""), 12, PlotScene::Anchor::middle,
                         false});
  scene.texts.push_back({box.x + 18, top + plot_h / 2, options.y_label, 12, PlotScene::Anchor::middle, true});
  for (std::size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& s = series[k];
    const Rgb color = series_color(k);
    PlotScene::Polyline line{{}, 2, color};
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      line.xy.push_back(px(s.x[i]));
      line.xy.push_back(py(s.y[i]));
      scene.circles.push_back({px(s.x[i]), py(s.y[i]), 3.5, color});
    }
    scene.polylines.push_back(std::move(line));
    const double legend_y = top + 10 + 20 * k, legend_x = box.x + box.width - kRight + 15;
    scene.lines.push_back({legend_x, legend_y, legend_x + 25, legend_y, 2, color});
    scene.texts.push_back({legend_x + 31, legend_y + 4, s.name, 12, PlotScene::Anchor::start, false});
  }
  return axes;
}

}  // namespace eqprop
