// Plots: nice tick values, honest accuracy axes, one layout drawn as SVG and PNG, a
// PNG that decodes, and the learning curve a training run writes.
#include <doctest/doctest.h>

#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hosttools/learning_curve.h"
#include "hosttools/plot_scene.h"
#include "hosttools/png_image.h"
#include "hosttools/svg_plot.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

std::uint32_t read_u32(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

// Checks a PNG's structure (signature, chunk CRCs, IHDR) and returns its pixels
// (inflated scanlines without the filter bytes).
std::vector<std::uint8_t> decode_png(const std::string& png, int& width, int& height) {
  REQUIRE(png.size() > 8);
  REQUIRE(png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) == 0);
  std::string idat;
  std::size_t at = 8;
  bool ended = false;
  while (at + 12 <= png.size()) {
    const std::uint32_t length = read_u32(png, at);
    const std::string type = png.substr(at + 4, 4);
    REQUIRE(at + 12 + length <= png.size());
    const std::uint32_t crc = read_u32(png, at + 8 + length);
    CHECK(crc == crc32(0L, reinterpret_cast<const Bytef*>(png.data() + at + 4), length + 4));
    if (type == "IHDR") {
      width = static_cast<int>(read_u32(png, at + 8));
      height = static_cast<int>(read_u32(png, at + 12));
      CHECK(png[at + 16] == 8);  // bit depth
      CHECK(png[at + 17] == 2);  // RGB
    } else if (type == "IDAT") {
      idat += png.substr(at + 8, length);
    } else if (type == "IEND") {
      ended = true;
    }
    at += 12 + length;
  }
  CHECK(ended);
  std::vector<std::uint8_t> raw(std::size_t(height) * (1 + 3 * std::size_t(width)));
  uLongf size = raw.size();
  REQUIRE(uncompress(raw.data(), &size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) == Z_OK);
  REQUIRE(size == raw.size());
  std::vector<std::uint8_t> pixels;
  for (int y = 0; y < height; ++y) {
    const std::size_t row = std::size_t(y) * (1 + 3 * std::size_t(width));
    CHECK(raw[row] == 0);  // filter type none
    pixels.insert(pixels.end(), raw.begin() + row + 1, raw.begin() + row + 1 + 3 * width);
  }
  return pixels;
}

std::size_t count_pixels(const RgbImage& image, Rgb color) {
  std::size_t count = 0;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const Rgb p = image.at(x, y);
      count += p.r == color.r && p.g == color.g && p.b == color.b;
    }
  return count;
}

}  // namespace

TEST_CASE("plot: nice ticks are round steps that cover the data") {
  for (auto [lo, hi] : {std::pair<double, double>{81.41, 87.22}, {0, 1}, {-3.7, 12.1}, {0.0012, 0.0019},
                        {-254.6, -46.8}, {99.5, 100}}) {
    const std::vector<double> ticks = nice_ticks(lo, hi, 5);
    CAPTURE(lo);
    CAPTURE(hi);
    REQUIRE(ticks.size() >= 2);
    CHECK(ticks.size() <= 12);
    const double step = ticks[1] - ticks[0];
    CHECK(ticks.front() <= lo + 1e-9 * step);  // up to rounding
    CHECK(ticks.back() >= hi - 1e-9 * step);
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
    bool round_step = false;
    for (double nice : {1.0, 2.0, 5.0, 10.0}) round_step = round_step || std::abs(mantissa - nice) < 1e-6;
    CHECK(round_step);
    for (double t : ticks) CHECK(std::abs(t / step - std::round(t / step)) < 1e-6);
  }
  CHECK(nice_ticks(81.41, 87.22, 5) == std::vector<double>{80, 82, 84, 86, 88});
  CHECK(tick_label(0.1 + 0.2, 0.1) == "0.3");
  CHECK(tick_label(80, 2) == "80");
  CHECK(tick_label(-0.0, 0.5) == "0.0");
}

TEST_CASE("plot: an accuracy axis spans at least its honest range and stays within [0, 100]") {
  PlotOptions options{"acc", "lr", "accuracy (%)"};
  options.min_y_span = 10, options.y_floor = 0, options.y_ceiling = 100;
  // A 0.2-point spread: the axis still spans 10 points with round ticks.
  const std::string svg = line_plot_svg({{"run", {1, 2, 3}, {85.1, 85.3, 85.2}}}, options);
  test::check_contains(svg, {">80<", ">90<"});
  CHECK(svg.find(">85.1<") == std::string::npos);  // no tick at a data value
  // Near 100 the span shifts down instead of crossing 100.
  const std::string top = line_plot_svg({{"run", {1, 2}, {99.2, 99.9}}}, options);
  test::check_contains(top, {">100<", ">90<"});
  CHECK(top.find(">105<") == std::string::npos);
  CHECK(top.find(">110<") == std::string::npos);
}

TEST_CASE("plot: the PNG of a scene decodes to the rasterized pixels") {
  PlotScene scene;
  lay_out_line_plot(scene, {{"a", {1, 2, 3}, {1, 3, 2}}, {"b", {1, 2, 3}, {2, 1, 3}}}, {"title", "x", "y"}, PanelBox{});
  const RgbImage image = rasterize(scene);
  CHECK(image.width == 720);
  CHECK(image.height == 440);
  // Both series are drawn in their colors, and the text in black.
  CHECK(count_pixels(image, series_color(0)) > 200);
  CHECK(count_pixels(image, series_color(1)) > 200);
  CHECK(count_pixels(image, Rgb{0, 0, 0}) > 500);
  int width = 0, height = 0;
  const std::vector<std::uint8_t> pixels = decode_png(encode_png(image), width, height);
  CHECK(width == 720);
  CHECK(height == 440);
  CHECK(pixels == image.pixels);
}

TEST_CASE("plot: text is drawn with the glyphs' width, anchored as asked") {
  PlotScene scene;
  scene.width = 200, scene.height = 40;
  scene.texts.push_back({100, 30, "0123456789", 12, PlotScene::Anchor::middle, false});
  const RgbImage image = rasterize(scene);
  int first = image.width, last = -1;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      if (image.at(x, y).r == 0) first = std::min(first, x), last = std::max(last, x);
  // Ten glyphs at scale 2: 3 columns of 2 pixels each, 2 pixels apart.
  CHECK(last - first + 1 == 10 * 8 - 2);
  CHECK(std::abs((first + last) / 2.0 - 100) <= 1.0);
}

TEST_CASE("plot: a run's learning curve has every epoch's accuracy, loss and energy") {
  test::TempDir dir;
  {
    std::ofstream metrics(dir.path() / "metrics.jsonl");
    for (int epoch = 1; epoch <= 3; ++epoch)
      metrics << nlohmann::json{{"epoch", epoch},
                                {"train_loss", 0.5 / epoch},
                                {"train_acc", 0.7 + 0.05 * epoch},
                                {"test_loss", 0.6 / epoch},
                                {"test_acc", 0.68 + 0.05 * epoch},
                                {"free_energy_mean", -40.0 - epoch},
                                {"free_energy_histogram",
                                 {{"edges", {-50.0 - epoch, -45.0, -40.0, -35.0 + epoch}}, {"counts", {3, 10, 2}}}}}
                     .dump()
              << "\n";
  }
  const std::string svg_path = write_learning_curve(dir.path().string());
  REQUIRE(svg_path == (dir.path() / "learning_curve.svg").string());
  std::ifstream svg_file(svg_path);
  std::stringstream svg;
  svg << svg_file.rdbuf();
  test::check_contains(svg.str(), {"accuracy (%)", "loss per sample", "free-phase energy", "test", "train", "epoch"});
  std::ifstream png_file(dir.path() / "learning_curve.png", std::ios::binary);
  std::stringstream png;
  png << png_file.rdbuf();
  int width = 0, height = 0;
  decode_png(png.str(), width, height);
  CHECK(width == 1680);
  CHECK(height == 430);
  // No records yet: nothing written.
  test::TempDir empty;
  CHECK(write_learning_curve(empty.path().string()).empty());
}

}  // namespace eqprop
