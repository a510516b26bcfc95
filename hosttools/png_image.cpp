#include "hosttools/png_image.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/error.h"

namespace eqprop {
namespace {

// 3x5 glyphs, row-major, '#' = ink. Lower case is drawn as upper case; a character
// without a glyph is drawn as a box.
struct Glyph {
  char c;
  const char* rows[5];  // top row first, 3 characters each
};
constexpr Glyph kFont[] = {
    {' ', {"...", "...", "...", "...", "..."}}, {'0', {"###", "#.#", "#.#", "#.#", "###"}}, {'1', {".#.", "##.", ".#.", ".#.", "###"}},
    {'2', {"###", "..#", "###", "#..", "###"}}, {'3', {"###", "..#", ".##", "..#", "###"}}, {'4', {"#.#", "#.#", "###", "..#", "..#"}},
    {'5', {"###", "#..", "###", "..#", "###"}}, {'6', {"###", "#..", "###", "#.#", "###"}}, {'7', {"###", "..#", "..#", ".#.", ".#."}},
    {'8', {"###", "#.#", "###", "#.#", "###"}}, {'9', {"###", "#.#", "###", "..#", "###"}}, {'A', {".#.", "#.#", "###", "#.#", "#.#"}},
    {'B', {"##.", "#.#", "##.", "#.#", "##."}}, {'C', {".##", "#..", "#..", "#..", ".##"}}, {'D', {"##.", "#.#", "#.#", "#.#", "##."}},
    {'E', {"###", "#..", "##.", "#..", "###"}}, {'F', {"###", "#..", "##.", "#..", "#.."}}, {'G', {".##", "#..", "#.#", "#.#", ".##"}},
    {'H', {"#.#", "#.#", "###", "#.#", "#.#"}}, {'I', {"###", ".#.", ".#.", ".#.", "###"}}, {'J', {"..#", "..#", "..#", "#.#", ".#."}},
    {'K', {"#.#", "#.#", "##.", "#.#", "#.#"}}, {'L', {"#..", "#..", "#..", "#..", "###"}}, {'M', {"#.#", "###", "#.#", "#.#", "#.#"}},
    {'N', {"##.", "#.#", "#.#", "#.#", "#.#"}}, {'O', {".#.", "#.#", "#.#", "#.#", ".#."}}, {'P', {"##.", "#.#", "##.", "#..", "#.."}},
    {'Q', {".#.", "#.#", "#.#", "##.", ".##"}}, {'R', {"##.", "#.#", "##.", "#.#", "#.#"}}, {'S', {".##", "#..", ".#.", "..#", "##."}},
    {'T', {"###", ".#.", ".#.", ".#.", ".#."}}, {'U', {"#.#", "#.#", "#.#", "#.#", "###"}}, {'V', {"#.#", "#.#", "#.#", "#.#", ".#."}},
    {'W', {"#.#", "#.#", "#.#", "###", "#.#"}}, {'X', {"#.#", "#.#", ".#.", "#.#", "#.#"}}, {'Y', {"#.#", "#.#", ".#.", ".#.", ".#."}},
    {'Z', {"###", "..#", ".#.", "#..", "###"}}, {'.', {"...", "...", "...", "...", ".#."}}, {',', {"...", "...", "...", ".#.", "#.."}},
    {'-', {"...", "...", "###", "...", "..."}}, {'+', {"...", ".#.", "###", ".#.", "..."}}, {'%', {"#.#", "..#", ".#.", "#..", "#.#"}},
    {'(', {"..#", ".#.", ".#.", ".#.", "..#"}}, {')', {"#..", ".#.", ".#.", ".#.", "#.."}}, {':', {"...", ".#.", "...", ".#.", "..."}},
    {'/', {"..#", "..#", ".#.", "#..", "#.."}}, {'_', {"...", "...", "...", "...", "###"}}, {'=', {"...", "###", "...", "###", "..."}},
    {'<', {"..#", ".#.", "#..", ".#.", "..#"}}, {'>', {"#..", ".#.", "..#", ".#.", "#.."}}, {'\'', {".#.", ".#.", "...", "...", "..."}},
    {'"', {"#.#", "#.#", "...", "...", "..."}}, {'&', {".#.", "#.#", ".#.", "#.#", ".##"}}, {'?', {"###", "..#", ".#.", "...", ".#."}},
    {'!', {".#.", ".#.", ".#.", "...", ".#."}}, {'[', {"##.", "#..", "#..", "#..", "##."}}, {']', {".##", "..#", "..#", "..#", ".##"}},
    {'*', {"#.#", ".#.", "#.#", "...", "..."}}, {';', {"...", ".#.", "...", ".#.", "#.."}}, {'|', {".#.", ".#.", ".#.", ".#.", ".#."}},
    {'#', {"#.#", "###", "#.#", "###", "#.#"}},
};

const Glyph& glyph_of(char c) {
  static constexpr Glyph box{'\0', {"###", "#.#", "#.#", "#.#", "###"}};  // a character without a glyph
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  for (const Glyph& g : kFont)
    if (g.c == c) return g;
  return box;
}

void fill_disk(RgbImage& image, double cx, double cy, double radius, Rgb color) {
  const int x0 = static_cast<int>(std::floor(cx - radius)), x1 = static_cast<int>(std::ceil(cx + radius));
  const int y0 = static_cast<int>(std::floor(cy - radius)), y1 = static_cast<int>(std::ceil(cy + radius));
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) {
      const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= radius * radius) image.set(x, y, color);
    }
}

// A line `width` pixels wide: a square stamp every half pixel along it.
void draw_line(RgbImage& image, double x0, double y0, double x1, double y1, double width, Rgb color) {
  const double length = std::hypot(x1 - x0, y1 - y0);
  const int steps = std::max(1, static_cast<int>(std::ceil(length * 2)));
  const int w = std::max(1, static_cast<int>(std::lround(width)));
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::floor(x0 + t * (x1 - x0) - 0.5 * (w - 1)));
    const int y = static_cast<int>(std::floor(y0 + t * (y1 - y0) - 0.5 * (w - 1)));
    for (int dy = 0; dy < w; ++dy)
      for (int dx = 0; dx < w; ++dx) image.set(x + dx, y + dy, color);
  }
}

void draw_text(RgbImage& image, const PlotScene::Text& text) {
  const int scale = std::max(1, static_cast<int>(text.size / 6 + 0.5));
  std::string shown;
  for (unsigned char c : text.text) {
    if (c >= 0x80 && c < 0xC0) continue;  // UTF-8 continuation: one box per character
    shown += c < 0x80 ? static_cast<char>(c) : '\x01';
  }
  const int advance = 4 * scale, width = static_cast<int>(shown.size()) * advance - scale;
  double start = text.anchor == PlotScene::Anchor::start ? 0 : text.anchor == PlotScene::Anchor::middle ? -width / 2.0
                                                                                                          : -width;
  // Text coordinates (u along the baseline, v down from it) to pixels.
  auto plot = [&](int u, int v) {
    if (text.vertical) image.set(static_cast<int>(text.x) + v, static_cast<int>(text.y - start) - u, Rgb{});
    else image.set(static_cast<int>(text.x + start) + u, static_cast<int>(text.y) + v, Rgb{});
  };
  for (std::size_t k = 0; k < shown.size(); ++k) {
    const Glyph& glyph = glyph_of(shown[k]);
    for (int row = 0; row < 5; ++row)
      for (int col = 0; col < 3; ++col) {
        if (glyph.rows[row][col] != '#') continue;
        for (int sy = 0; sy < scale; ++sy)
          for (int sx = 0; sx < scale; ++sx)
            plot(static_cast<int>(k) * advance + col * scale + sx, (row - 5) * scale + sy);
      }
  }
}

void append_u32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xFF);
}

void append_chunk(std::string& out, const char type[4], const std::string& data) {
  append_u32(out, static_cast<std::uint32_t>(data.size()));
  const std::string typed = std::string(type, 4) + data;
  out += typed;
  append_u32(out, static_cast<std::uint32_t>(
                      crc32(0L, reinterpret_cast<const Bytef*>(typed.data()), static_cast<uInt>(typed.size()))));
}

}  // namespace

Rgb RgbImage::at(int x, int y) const {
  const std::uint8_t* p = &pixels[(std::size_t(y) * width + x) * 3];
  return {p[0], p[1], p[2]};
}

void RgbImage::set(int x, int y, Rgb color) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  std::uint8_t* p = &pixels[(std::size_t(y) * width + x) * 3];
  p[0] = color.r, p[1] = color.g, p[2] = color.b;
}

RgbImage rasterize(const PlotScene& scene) {
  RgbImage image(static_cast<int>(std::lround(scene.width)), static_cast<int>(std::lround(scene.height)));
  for (const PlotScene::Rect& r : scene.rects) {
    if (r.filled) {
      for (int y = static_cast<int>(std::floor(r.y)); y < static_cast<int>(std::ceil(r.y + r.height)); ++y)
        for (int x = static_cast<int>(std::floor(r.x)); x < static_cast<int>(std::ceil(r.x + r.width)); ++x)
          image.set(x, y, r.fill);
      continue;
    }
    draw_line(image, r.x, r.y, r.x + r.width, r.y, 1, r.stroke);
    draw_line(image, r.x + r.width, r.y, r.x + r.width, r.y + r.height, 1, r.stroke);
    draw_line(image, r.x, r.y + r.height, r.x + r.width, r.y + r.height, 1, r.stroke);
    draw_line(image, r.x, r.y, r.x, r.y + r.height, 1, r.stroke);
  }
  for (const PlotScene::Line& l : scene.lines) draw_line(image, l.x0, l.y0, l.x1, l.y1, l.width, l.color);
  for (const PlotScene::Polyline& p : scene.polylines)
    for (std::size_t i = 0; i + 3 < p.xy.size(); i += 2)
      draw_line(image, p.xy[i], p.xy[i + 1], p.xy[i + 2], p.xy[i + 3], p.width, p.color);
  for (const PlotScene::Circle& c : scene.circles) fill_disk(image, c.cx, c.cy, c.radius, c.color);
  for (const PlotScene::Text& t : scene.texts) draw_text(image, t);
  return image;
}

std::string encode_png(const RgbImage& image) {
  // Each row: filter type 0 (none), then the row's bytes.
  const std::size_t row_bytes = std::size_t(image.width) * 3;
  std::string raw;
  raw.reserve((row_bytes + 1) * image.height);
  for (int y = 0; y < image.height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(&image.pixels[y * row_bytes]), row_bytes);
  }
  uLongf compressed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string compressed(compressed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(&compressed[0]), &compressed_size,
                reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()), 9) != Z_OK)
    throw DataError("encode_png: zlib could not compress the image");
  compressed.resize(compressed_size);

  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string header;
  append_u32(header, static_cast<std::uint32_t>(image.width));
  append_u32(header, static_cast<std::uint32_t>(image.height));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, no filter choice, no interlace
  append_chunk(png, "IHDR", header);
  append_chunk(png, "IDAT", compressed);
  append_chunk(png, "IEND", "");
  return png;
}

}  // namespace eqprop
