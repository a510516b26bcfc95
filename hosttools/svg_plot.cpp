#include "hosttools/svg_plot.h"

#include <cstdio>
#include <sstream>

namespace eqprop {
namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string color(Rgb c) {
  char text[8];
  std::snprintf(text, sizeof text, "#%02x%02x%02x", c.r, c.g, c.b);
  return text;
}

const char* anchor(PlotScene::Anchor a) {
  return a == PlotScene::Anchor::start ? "start" : a == PlotScene::Anchor::middle ? "middle" : "end";
}

}  // namespace

std::string scene_to_svg(const PlotScene& scene) {
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << scene.width << "\" height=\"" << scene.height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (const PlotScene::Rect& r : scene.rects)
    svg << "<rect x=\"" << r.x << "\" y=\"" << r.y << "\" width=\"" << r.width << "\" height=\"" << r.height << "\" "
        << (r.filled ? "fill=\"" + color(r.fill) + "\"" : "fill=\"none\" stroke=\"" + color(r.stroke) + "\"")
        << "/>\n";
  for (const PlotScene::Line& l : scene.lines)
    svg << "<line x1=\"" << l.x0 << "\" y1=\"" << l.y0 << "\" x2=\"" << l.x1 << "\" y2=\"" << l.y1 << "\" stroke=\""
        << color(l.color) << "\"" << (l.width != 1 ? " stroke-width=\"" + std::to_string(int(l.width)) + "\"" : "")
        << "/>\n";
  for (const PlotScene::Polyline& p : scene.polylines) {
    svg << "<polyline fill=\"none\" stroke=\"" << color(p.color) << "\" stroke-width=\"" << p.width
        << "\" points=\"";
    for (std::size_t i = 0; i + 1 < p.xy.size(); i += 2) svg << p.xy[i] << "," << p.xy[i + 1] << " ";
    svg << "\"/>\n";
  }
  for (const PlotScene::Circle& c : scene.circles)
    svg << "<circle cx=\"" << c.cx << "\" cy=\"" << c.cy << "\" r=\"" << c.radius << "\" fill=\"" << color(c.color)
        << "\"/>\n";
  for (const PlotScene::Text& t : scene.texts) {
    svg << "<text ";
    if (t.vertical) svg << "transform=\"translate(" << t.x << "," << t.y << ") rotate(-90)\"";
    else svg << "x=\"" << t.x << "\" y=\"" << t.y << "\"";
    svg << " text-anchor=\"" << anchor(t.anchor) << "\"" << (t.size != 12 ? " font-size=\"" + std::to_string(int(t.size)) + "\"" : "")
        << ">" << escape(t.text) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string line_plot_svg(const std::vector<PlotSeries>& series, const PlotOptions& options) {
  PlotScene scene;
  lay_out_line_plot(scene, series, options, PanelBox{});
  return scene_to_svg(scene);
}

}  // namespace eqprop
