// Training-set augmentation of images, applied by the loader thread to the raw
// pixel bytes before normalization (engine/batch_loader.h): a random crop after
// zero padding and a random horizontal flip, the two augmentations of the CIFAR-10
// EP recipes (Laborieux et al. 2021, Sec. 4; the torchvision RandomCrop(32,
// padding=4) and RandomHorizontalFlip transforms). The padding is black pixels
// (byte 0), as torchvision pads the image before ToTensor and Normalize.
//
// The draw for a sample is a pure function of (seed, epoch, sample index) through
// the counter-based RNG (kernels/philox.h, RngStream::augmentation): the same in
// every run, on any number of loader threads, and after a resume.
#pragma once

#include <cstdint>

namespace eqprop {

struct AugmentationOptions {
  int crop_padding = 0;  // 0: no crop; p: pad by p on every side, crop back at a random offset
  bool flip = false;     // mirror left-right with probability 1/2

  bool enabled() const { return crop_padding > 0 || flip; }
};

// What happens to one sample: the crop's top-left corner (offset_y, offset_x) in
// the padded image, each in [0, 2 * crop_padding] (crop_padding: the centre, i.e.
// no shift), and whether the crop is mirrored.
struct AugmentationDraw {
  int offset_y = 0;
  int offset_x = 0;
  bool flip = false;
};

// The draw of `sample` (its index in the data set) in `epoch`. The offsets and the
// flip come from separate random words, so enabling one does not change the other.
AugmentationDraw draw_augmentation(const AugmentationOptions& options, std::uint64_t seed, std::uint32_t epoch,
                                   std::int64_t sample);

// out (channels, height, width) = mirror_if(draw.flip, crop of source zero-padded
// by `padding`): out[c][y][x] = source[c][y + oy - p][x' + ox - p] with
// x' = width - 1 - x when flipped, 0 outside the image. source and out must not alias.
void augment_image(const std::uint8_t* source, std::uint8_t* out, int channels, int height, int width,
                   int padding, const AugmentationDraw& draw);

}  // namespace eqprop
