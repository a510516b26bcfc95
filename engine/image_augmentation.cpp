#include "engine/image_augmentation.h"

#include <algorithm>
#include <cstring>

#include "kernels/philox.h"

namespace eqprop {
namespace {

// A uniform integer in [0, range) from a 32-bit word, by multiply-shift (no modulo;
// the bias is below range / 2^32).
int uniform_below(std::uint32_t word, int range) {
  return static_cast<int>((static_cast<std::uint64_t>(word) * static_cast<std::uint64_t>(range)) >> 32);
}

}  // namespace

AugmentationDraw draw_augmentation(const AugmentationOptions& options, std::uint64_t seed, std::uint32_t epoch,
                                   std::int64_t sample) {
  AugmentationDraw draw;
  draw.offset_y = draw.offset_x = options.crop_padding;
  if (!options.enabled()) return draw;
  const Philox4 words = random_words(seed, RngStream::augmentation, static_cast<std::uint64_t>(sample), epoch);
  if (options.crop_padding > 0) {
    const int positions = 2 * options.crop_padding + 1;
    draw.offset_y = uniform_below(words.v[0], positions);
    draw.offset_x = uniform_below(words.v[1], positions);
  }
  draw.flip = options.flip && (words.v[2] & 1u) != 0;
  return draw;
}

void augment_image(const std::uint8_t* source, std::uint8_t* out, int channels, int height, int width,
                   int padding, const AugmentationDraw& draw) {
  const int shift_y = draw.offset_y - padding, shift_x = draw.offset_x - padding;
  // Output columns [x_begin, x_end) read inside the source row; the rest are padding.
  const int x_begin = std::clamp(-shift_x, 0, width), x_end = std::clamp(width - shift_x, 0, width);
  for (int c = 0; c < channels; ++c) {
    const std::uint8_t* plane = source + static_cast<std::int64_t>(c) * height * width;
    std::uint8_t* out_plane = out + static_cast<std::int64_t>(c) * height * width;
    for (int y = 0; y < height; ++y) {
      std::uint8_t* row = out_plane + static_cast<std::int64_t>(y) * width;
      const int source_y = y + shift_y;
      if (source_y < 0 || source_y >= height) {
        std::memset(row, 0, static_cast<std::size_t>(width));
        continue;
      }
      const std::uint8_t* source_row = plane + static_cast<std::int64_t>(source_y) * width;
      // The crop, then the mirror: column x of the output is column x' of the crop.
      for (int x = 0; x < width; ++x) {
        const int crop_x = draw.flip ? width - 1 - x : x;
        row[x] = crop_x >= x_begin && crop_x < x_end ? source_row[crop_x + shift_x] : 0;
      }
    }
  }
}

}  // namespace eqprop
