// out = in - subtrahend, from fp32 planes into bf16 channels-last (NHWC): the x of a
// bf16 library convolution (models/conv_hopfield.cpp), made in the one pass that
// reads the state, where the library's own reorder would transpose and convert an
// fp32 copy (and, from a reference state, an AxpbyOp pass would come first).
// Rounding: kernels/bf16.h, so the library sees the bits its reorder would have
// made. A copy per element: bit-exact on every backend. Measured on one core of an
// Intel Xeon with AMX, batch 16 (`OMP_NUM_THREADS=1 eqprop_pool_rows 16 100 nhwc`,
// pooled_to_bf16_nhwc_ms, against oneDNN 2.6's reorder in ONEDNN_VERBOSE): the
// 128x16x16 state 0.15-0.16 ms against 0.36, the 256x8x8 one 0.05 against 0.17.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/bf16.h"
#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/plane_layout.h"
#include "kernels/transpose_tile.h"

namespace eqprop {

struct ChannelsLastBf16Op {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* in;             // (batch, channels, plane_size) in in_layout
  const float* subtrahend;     // the same shape and layout as in, or null (none)
  std::uint16_t* out;          // (batch, channels, plane_size) in out_layout, channels-last
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  std::int32_t channels;
  std::int32_t plane_size;     // height * width

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t p) const {
    const std::int64_t at = in_layout.at(b, c, p, plane_size);
    const float value = subtrahend ? in[at] - subtrahend[at] : in[at];
    out[out_layout.at(b, c, p, plane_size)] = bf16_bits(value);
  }

  // Index i in logical (b, c, p) order, as PlaneRelayoutOp.
  EQ_HD void operator()(std::int64_t i) const {
    const IndexDivision plane = divide_index(i, plane_size);
    const IndexDivision sample = divide_index(plane.quotient, channels);
    element(static_cast<std::int32_t>(sample.quotient), static_cast<std::int32_t>(sample.remainder),
            static_cast<std::int32_t>(plane.remainder));
  }

  // CPU: a row is a tile of kTransposeTile positions of one sample, all channels,
  // in blocks of kTransposeTile: each whole block's planes are read as a tile
  // transposed in registers (kernels/transpose_tile.h), then written a position's
  // 16 channels at a time; partial tiles and blocks element by element. Other
  // layouts take element() in logical order.
  bool tiled_rows() const { return in_layout.planar() && out_layout.channels_last(channels); }
  std::int64_t row_count(std::int64_t count) const {
    const std::int64_t samples = count / (std::int64_t(channels) * plane_size);
    return tiled_rows() ? position_tile_count(samples, plane_size) : samples * channels;
  }
  void row(std::int64_t r) const {
    if (!tiled_rows()) {
      const std::int32_t b = static_cast<std::int32_t>(r / channels), c = static_cast<std::int32_t>(r % channels);
      for (std::int32_t p = 0; p < plane_size; ++p) element(b, c, p);
      return;
    }
    const auto [b, first, count] = position_tile(r, plane_size);
    std::int32_t c = 0;
    if (count == kTransposeTile) {
      for (; c + kTransposeTile <= channels; c += kTransposeTile) {
        if (subtrahend)
          block(b, c, first, std::true_type{});
        else
          block(b, c, first, std::false_type{});
      }
    }
    for (std::int32_t p = first; p < first + count; ++p)
      for (std::int32_t k = c; k < channels; ++k) element(b, k, p);
  }

 private:
  template <class Subtract>
  void block(std::int32_t b, std::int32_t first_channel, std::int32_t first_position, Subtract) const {
    const std::int64_t origin = in_layout.origin(b, first_channel, plane_size) + first_position;
    const std::int64_t channel_step = std::int64_t(in_layout.channel_stride) * plane_size;
    float value[kTransposeTile][kTransposeTile];
    transpose_tile(in + origin, channel_step, &value[0][0], kTransposeTile);
    [[maybe_unused]] float less[kTransposeTile][kTransposeTile];
    if constexpr (Subtract::value) transpose_tile(subtrahend + origin, channel_step, &less[0][0], kTransposeTile);
    std::uint16_t* target = out + out_layout.at(b, first_channel, first_position, plane_size);
    const std::int64_t step = out_layout.position_stride;
    for (std::int32_t p = 0; p < kTransposeTile; ++p, target += step) {
      if constexpr (Subtract::value) {
        for (std::int32_t k = 0; k < kTransposeTile; ++k) target[k] = bf16_bits(value[p][k] - less[p][k]);
      } else {
        for (std::int32_t k = 0; k < kTransposeTile; ++k) target[k] = bf16_bits(value[p][k]);
      }
    }
  }
};

}  // namespace eqprop
