#include "hosttools/learning_curve.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "hosttools/plot_files.h"

namespace eqprop {
namespace {

constexpr double kPanelWidth = 560, kPanelHeight = 400;

double number_or_nan(const nlohmann::json& record, const char* key) {
  const auto it = record.find(key);
  return it != record.end() && it->is_number() ? it->get<double>() : std::nan("");
}

// The free-phase energy histograms of the epochs as a heat map under the panel's
// lines: one column per epoch, each bin shaded by its share of that epoch's systems.
void draw_energy_histograms(PlotScene& scene, const PanelAxes& axes, const std::vector<nlohmann::json>& records) {
  std::vector<PlotScene::Rect> cells;
  for (const nlohmann::json& record : records) {
    const auto histogram = record.find("free_energy_histogram");
    if (histogram == record.end() || !histogram->is_object()) continue;
    const auto edges = histogram->value("edges", std::vector<double>{});
    const auto counts = histogram->value("counts", std::vector<double>{});
    if (edges.size() != counts.size() + 1 || counts.empty()) continue;
    const double most = *std::max_element(counts.begin(), counts.end());
    if (!(most > 0)) continue;
    const double epoch = number_or_nan(record, "epoch");
    // 80% of the distance between epochs, clipped to the plot area.
    const double column = 0.8 * axes.width / std::max<std::size_t>(records.size() > 1 ? records.size() - 1 : 1, 1);
    const double left = std::max(axes.left, axes.px(epoch) - column / 2);
    const double right = std::min(axes.left + axes.width, axes.px(epoch) + column / 2);
    for (std::size_t b = 0; b < counts.size(); ++b) {
      if (counts[b] <= 0) continue;
      const auto shade = static_cast<std::uint8_t>(235 - 135 * counts[b] / most);
      const double top = axes.py(edges[b + 1]), bottom = axes.py(edges[b]);
      cells.push_back({left, top, right - left, std::max(1.0, bottom - top),
                       Rgb{shade, shade, 255}, true, Rgb{}});
    }
  }
  // Under the frames and lines, which the scene draws after its first rectangles.
  scene.rects.insert(scene.rects.begin(), cells.begin(), cells.end());
}

}  // namespace

PlotScene learning_curve_scene(const std::vector<nlohmann::json>& records, const std::string& title) {
  PlotSeries test_acc{"test", {}, {}}, train_acc{"train", {}, {}}, test_loss{"test", {}, {}},
      train_loss{"train", {}, {}}, energy_mean{"mean", {}, {}}, energy_low{"lowest", {}, {}},
      energy_high{"highest", {}, {}};
  for (const nlohmann::json& record : records) {
    const double epoch = number_or_nan(record, "epoch");
    test_acc.x.push_back(epoch), test_acc.y.push_back(100 * number_or_nan(record, "test_acc"));
    train_acc.x.push_back(epoch), train_acc.y.push_back(100 * number_or_nan(record, "train_acc"));
    test_loss.x.push_back(epoch), test_loss.y.push_back(number_or_nan(record, "test_loss"));
    train_loss.x.push_back(epoch), train_loss.y.push_back(number_or_nan(record, "train_loss"));
    energy_mean.x.push_back(epoch), energy_mean.y.push_back(number_or_nan(record, "free_energy_mean"));
    const auto edges = record.value("free_energy_histogram", nlohmann::json::object())
                           .value("edges", std::vector<double>{});
    energy_low.x.push_back(epoch), energy_low.y.push_back(edges.empty() ? std::nan("") : edges.front());
    energy_high.x.push_back(epoch), energy_high.y.push_back(edges.empty() ? std::nan("") : edges.back());
  }
  PlotScene scene;
  scene.width = 3 * kPanelWidth;
  scene.height = kPanelHeight + 30;
  scene.texts.push_back({scene.width / 2, 20, title, 15, PlotScene::Anchor::middle, false});
  PlotOptions accuracy{"accuracy", "epoch", "accuracy (%)"};
  accuracy.min_y_span = 10, accuracy.y_floor = 0, accuracy.y_ceiling = 100;
  lay_out_line_plot(scene, {test_acc, train_acc}, accuracy, {0, 30, kPanelWidth, kPanelHeight});
  lay_out_line_plot(scene, {test_loss, train_loss}, {"loss", "epoch", "loss per sample"},
                    {kPanelWidth, 30, kPanelWidth, kPanelHeight});
  const PanelAxes energy_axes =
      lay_out_line_plot(scene, {energy_mean, energy_low, energy_high},
                        {"free-phase energy (shade: histogram)", "epoch", "E at the end of the free phase"},
                        {2 * kPanelWidth, 30, kPanelWidth, kPanelHeight});
  draw_energy_histograms(scene, energy_axes, records);
  return scene;
}

std::string write_learning_curve(const std::string& run_dir) {
  const std::filesystem::path dir(run_dir);
  std::ifstream metrics(dir / kMetricsFile);
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(metrics, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_object() && record.contains("epoch")) records.push_back(record);
  }
  if (records.empty()) return "";
  const PlotScene scene = learning_curve_scene(records, "training run " + dir.filename().string());
  write_plot_files((dir / "learning_curve").string(), scene);
  return (dir / "learning_curve.svg").string();
}

}  // namespace eqprop
