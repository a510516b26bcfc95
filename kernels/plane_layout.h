// How a 4-D activation tensor (batch, channels, height, width) sits in memory: as
// row-major (height, width) planes, contiguous in one of two plane orders, or
// channels-last with the channels of a position side by side.
//  - batch-major, NCHW: plane (b, c) is plane b * channels + c. The public layout:
//    PyTorch's, the data's, the checkpoints'.
//  - channel-major, CNHW: plane (b, c) is plane c * batch + b. Channel c's
//    batch * height * width values are then one contiguous row, which is exactly a
//    row of the convolution GEMMs' (channels, batch * positions) operands
//    (kernels/im2col.h): a channel-major tensor needs no reordering to enter or
//    leave a GEMM.
//  - channels-last, NHWC: element (b, c, p) at (b * height * width + p) * channels
//    + c. What oneDNN's bf16 convolutions read and write on AMX
//    (kernels/dnnl_convolution.cpp): the pre-pooling output of such a convolution
//    (models/conv_hopfield.cpp) held channels-last needs no transposing reorder
//    around it; the pooling ops read and write it directly.
// A PlaneLayout holds the strides, so a slice of samples [begin, begin + n) of any
// of them is addressed by offsetting the base pointer by `begin` samples
// (sample_stride * plane size elements) and keeping the strides of the whole
// tensor: how one CPU core addresses its slice of the batch.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/transpose_tile.h"

namespace eqprop {

struct PlaneLayout {
  // Element (b, c, p) of a tensor of planes of P positions lies at
  //   (b * sample_stride + c * channel_stride) * P + c * channel_step + p * position_stride.
  // NCHW {C, 1, 0, 1}; CNHW of N samples {1, N, 0, 1}; NHWC {C, 0, 1, C}.
  std::int32_t sample_stride = 0;    // planes from sample b to b + 1
  std::int32_t channel_stride = 0;   // planes from channel c to c + 1 (0: channels-last)
  std::int32_t channel_step = 0;     // elements from channel c to c + 1 within a position (channels-last: 1)
  std::int32_t position_stride = 1;  // elements from position p to p + 1 (channels-last: the channel count)

  // Offset of position 0 of plane (sample, channel), planes of plane_size positions.
  EQ_HD std::int64_t origin(std::int32_t sample, std::int32_t channel, std::int64_t plane_size) const {
    return (std::int64_t(sample) * sample_stride + std::int64_t(channel) * channel_stride) * plane_size +
           std::int64_t(channel) * channel_step;
  }
  // Offset of element (sample, channel, position).
  EQ_HD std::int64_t at(std::int32_t sample, std::int32_t channel, std::int64_t position,
                        std::int64_t plane_size) const {
    return origin(sample, channel, plane_size) + position * position_stride;
  }
  // Each plane contiguous (NCHW, CNHW): the CPU row paths walk planes with pointers.
  bool planar() const { return position_stride == 1 && channel_step == 0; }
  // NHWC of `channels` channels: a position's channels side by side, nothing between.
  bool channels_last(std::int32_t channels) const {
    return channel_stride == 0 && channel_step == 1 && position_stride == channels;
  }
  bool operator==(const PlaneLayout& other) const {
    return sample_stride == other.sample_stride && channel_stride == other.channel_stride &&
           channel_step == other.channel_step && position_stride == other.position_stride;
  }
  bool operator!=(const PlaneLayout& other) const { return !(*this == other); }
};

// n / d and n % d of an index n >= 0 and a size d > 0, in 32-bit unsigned
// arithmetic whenever both fit, in 64-bit otherwise: the same integers either way.
// Why: a GPU has no integer divider; a 64-bit division by a run-time divisor is a
// called subroutine of ~70 instructions, a 32-bit one ~20 inline ones, and the
// per-element index decompositions below are what the layout and pooling kernels
// spend their instructions on. Every index of a tensor below 2^32 elements takes
// the 32-bit path (the branch is uniform across a warp but for the one warp that
// straddles 2^32); larger tensors stay correct on the 64-bit path.
struct IndexDivision {
  std::int64_t quotient, remainder;
};
EQ_HD IndexDivision divide_index(std::int64_t n, std::int64_t d) {
  if (((static_cast<std::uint64_t>(n) | static_cast<std::uint64_t>(d)) >> 32) == 0) {
    const std::uint32_t n32 = static_cast<std::uint32_t>(n), d32 = static_cast<std::uint32_t>(d);
    const std::uint32_t q = n32 / d32;
    return {std::int64_t(q), std::int64_t(n32 - q * d32)};
  }
  const std::int64_t q = n / d;
  return {q, n - q * d};
}

// The logical coordinates (sample, channel, y, x) of flat index i of a
// (batch, channels, height, width) tensor in NCHW order: how the ops over 4-D
// tensors number their threads (a pure function of the logical index, whatever
// the tensor's layout).
struct PlaneIndex {
  std::int32_t sample, channel, y, x;
};
EQ_HD PlaneIndex plane_index(std::int64_t i, std::int32_t channels, std::int32_t height, std::int32_t width) {
  const IndexDivision plane = divide_index(i, std::int64_t(height) * width);
  const IndexDivision sample = divide_index(plane.quotient, channels);
  // Within a plane of int32 height and width: unsigned 32-bit, like every plane
  // offset of the ops (cheaper than signed).
  const auto within = static_cast<std::uint32_t>(plane.remainder), w = static_cast<std::uint32_t>(width);
  const std::uint32_t y = within / w;
  return {static_cast<std::int32_t>(sample.quotient), static_cast<std::int32_t>(sample.remainder),
          static_cast<std::int32_t>(y), static_cast<std::int32_t>(within - y * w)};
}

// The thread mapping shared by the per-element ops over 4-D tensors (pooling,
// col2im: kernels/max_pool.h, kernels/im2col.h). Such an op defines
// element(b, c, y, x) for one element of the (batch, channels, height, width)
// tensor it iterates, and forwards to these two in one line each:
//  - plane_element: flat logical index i in NCHW order, its operator()(i) (one
//    GPU thread per element, and the CPU fallback);
//  - plane_row: CPU row r = logical plane (b, c), its row(r) (with row_count =
//    count / (height * width)), a loop over the plane with no index arithmetic
//    per element. Free functions, not a base class, so the ops stay aggregates
//    initialized with one pair of braces.
template <class Op>
EQ_HD void plane_element(const Op& op, std::int64_t i, std::int32_t channels, std::int32_t height,
                         std::int32_t width) {
  const PlaneIndex at = plane_index(i, channels, height, width);
  op.element(at.sample, at.channel, at.y, at.x);
}
template <class Op>
void plane_row(const Op& op, std::int64_t r, std::int32_t channels, std::int32_t height, std::int32_t width) {
  const std::int32_t b = static_cast<std::int32_t>(r / channels), c = static_cast<std::int32_t>(r % channels);
  for (std::int32_t y = 0; y < height; ++y)
    for (std::int32_t x = 0; x < width; ++x) op.element(b, c, y, x);
}

// Batch-major NCHW with `channels` channels.
// The CPU rows that move data between channels-last tensors and planes
// (PlaneRelayoutOp here, kernels/channels_last_bf16.h, kernels/max_pool.h): a row
// is a tile of kTransposeTile positions of one sample, all channels; the last tile
// of a plane may be partial.
struct PositionTile {
  std::int32_t sample, first, count;  // positions [first, first + count) of sample
};
inline std::int64_t position_tile_count(std::int64_t batch, std::int32_t plane_size) {
  return batch * ((plane_size + kTransposeTile - 1) / kTransposeTile);
}
inline PositionTile position_tile(std::int64_t r, std::int32_t plane_size) {
  const std::int64_t tiles = (plane_size + kTransposeTile - 1) / kTransposeTile;
  const auto sample = static_cast<std::int32_t>(r / tiles);
  const auto first = static_cast<std::int32_t>(r % tiles) * kTransposeTile;
  return {sample, first, plane_size - first < kTransposeTile ? plane_size - first : kTransposeTile};
}

inline PlaneLayout nchw_layout(std::int32_t channels) { return {channels, 1}; }
// Channel-major CNHW of a tensor holding `whole_batch` samples.
inline PlaneLayout cnhw_layout(std::int32_t whole_batch) { return {1, whole_batch}; }
// Channels-last NHWC with `channels` channels.
inline PlaneLayout nhwc_layout(std::int32_t channels) { return {channels, 0, 1, channels}; }

// out[b, c, p] = in[b, c, p] + bias[c]   (+ out[b, c, p] when accumulating), each
// tensor in its own layout; p in [0, plane_size) indexes a plane. Converts between
// layouts and adds a per-channel bias in the same pass (the epilogue of a
// convolution GEMM, models/conv_ops.cpp). in == out with equal layouts is allowed.
// Thread mapping: one index per element in logical (b, c, p) order; with planar
// layouts reads and writes are coalesced runs of plane_size.
// No reduction: bit-exact on every backend.
struct PlaneRelayoutOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* in;         // (batch, channels, plane_size) in in_layout
  float* out;              // (batch, channels, plane_size) in out_layout
  const float* bias;       // (channels), or null
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  std::int32_t channels;
  std::int32_t plane_size;  // height * width
  bool accumulate;

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t p) const {
    const float read = in[in_layout.at(b, c, p, plane_size)];
    const float value = bias ? read + bias[c] : read;
    float& target = out[out_layout.at(b, c, p, plane_size)];
    target = accumulate ? target + value : value;
  }

  EQ_HD void operator()(std::int64_t i) const {
    const IndexDivision plane = divide_index(i, plane_size);
    const IndexDivision sample = divide_index(plane.quotient, channels);
    element(static_cast<std::int32_t>(sample.quotient), static_cast<std::int32_t>(sample.remainder),
            static_cast<std::int32_t>(plane.remainder));
  }

  // CPU: one logical plane (b, c) per row, no index arithmetic per element (planar
  // layouts: contiguous runs the compiler vectorises). From channels-last into
  // planes (a library's NHWC result into the NCHW state's layout), a row is a tile
  // of kTransposeTile positions of one sample, all channels, moved in 16x16 tiles
  // transposed in registers (kernels/transpose_tile.h); partial tiles and blocks
  // element by element.
  bool tiled_rows() const { return in_layout.channels_last(channels) && out_layout.planar(); }
  std::int64_t row_count(std::int64_t count) const {
    return tiled_rows() ? position_tile_count(count / (std::int64_t(channels) * plane_size), plane_size)
                        : count / plane_size;
  }
  void row(std::int64_t r) const {
    if (tiled_rows()) return tile_row(r);
    const std::int32_t b = static_cast<std::int32_t>(r / channels), c = static_cast<std::int32_t>(r % channels);
    if (!in_layout.planar() || !out_layout.planar()) {
      for (std::int32_t p = 0; p < plane_size; ++p) element(b, c, p);
      return;
    }
    const float* source = in + in_layout.origin(b, c, plane_size);
    float* target = out + out_layout.origin(b, c, plane_size);
    const float add = bias ? bias[c] : 0.0f;
    for (std::int32_t p = 0; p < plane_size; ++p) {
      const float value = bias ? source[p] + add : source[p];
      target[p] = accumulate ? target[p] + value : value;
    }
  }
  void tile_row(std::int64_t r) const {
    const auto [b, first, count] = position_tile(r, plane_size);
    std::int32_t c = 0;
    for (; count == kTransposeTile && c + kTransposeTile <= channels; c += kTransposeTile) {
      float tile[kTransposeTile][kTransposeTile];  // [channel][position]
      transpose_tile(in + in_layout.at(b, c, first, plane_size), in_layout.position_stride, &tile[0][0],
                     kTransposeTile);
      for (std::int32_t k = 0; k < kTransposeTile; ++k) {
        float* target = out + out_layout.at(b, c + k, first, plane_size);
        const float add = bias ? bias[c + k] : 0.0f;
        for (std::int32_t p = 0; p < kTransposeTile; ++p) {
          const float value = bias ? tile[k][p] + add : tile[k][p];
          target[p] = accumulate ? target[p] + value : value;
        }
      }
    }
    for (std::int32_t p = first; p < first + count; ++p)
      for (std::int32_t k = c; k < channels; ++k) element(b, k, p);
  }
};

}  // namespace eqprop
