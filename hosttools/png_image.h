// A plot scene (hosttools/plot_scene.h) rasterized into a PNG file, for people who
// would rather open an image than an SVG. No image library: the rasterizer draws
// the scene's lines, disks, rectangles and text (a 3x5 pixel font of its own,
// scaled) into an RGB canvas, and zlib compresses the PNG's image data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hosttools/plot_scene.h"

namespace eqprop {

// An RGB image, row-major, 3 bytes per pixel, top row first.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;  // (height, width, 3)

  RgbImage(int w, int h) : width(w), height(h), pixels(std::size_t(w) * h * 3, 255) {}
  Rgb at(int x, int y) const;
  void set(int x, int y, Rgb color);  // ignores points outside the image
};

// Draws the scene (white background) at its own size.
RgbImage rasterize(const PlotScene& scene);

// The PNG file of an image (8-bit RGB, no interlace).
std::string encode_png(const RgbImage& image);

}  // namespace eqprop
