#include "hosttools/plot_files.h"

#include "engine/atomic_file.h"
#include "hosttools/png_image.h"
#include "hosttools/svg_plot.h"

namespace eqprop {

void write_plot_files(const std::string& stem, const PlotScene& scene) {
  write_file_atomically(stem + ".svg", scene_to_svg(scene));
  write_file_atomically(stem + ".png", encode_png(rasterize(scene)));
}

void write_line_plot_files(const std::string& stem, const std::vector<PlotSeries>& series,
                           const PlotOptions& options) {
  PlotScene scene;
  lay_out_line_plot(scene, series, options, PanelBox{});
  write_plot_files(stem, scene);
}

}  // namespace eqprop
