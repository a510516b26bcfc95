// Pooling between the layers of a convolutional Hopfield network (Laborieux et
// al. 2021; Scellier et al. 2023: 2x2 max-pooling after each convolution), and
// the adjoint of each pooling, which carries the field of the layer above back
// down (DESIGN.md §1):
//  - max pooling records, per window, where its maximum was (argmax); max
//    unpooling sends each pooled-side value to that position and zero elsewhere.
//    With the argmax held fixed, pooling is linear (a selection) and unpooling is
//    its exact adjoint: <pool(x), y> = <x, unpool(y)>. In the energy, the argmax
//    is that of the current states (PyTorch's max_pool2d backward does the same).
//  - average pooling and its adjoint, which spreads each value / K^2 over its window.
// General KxK windows, stride and padding (kernels/sliding_window.h), PyTorch's
// conventions: max pooling pads with -inf (a padded position never wins), average
// pooling counts the padding (divides by K^2, count_include_pad = true). Padding
// is at most kernel / 2, so every window holds an input element (checked by the
// host-side shapes, models/conv_ops.h).
//
// Ties and NaN: the first maximum in window order (kh, then kw) wins, so equal
// values give a reproducible argmax; a NaN wins over numbers (the first NaN), so a
// diverged state propagates through the pooling as it does in PyTorch.
//
// All four are gathers over the tensor they write, one index per element in
// logical (b, c, y, x) order: the forward ops reduce their window serially, the
// adjoint ops sum over the windows covering their element by increasing (oh, ow).
// No atomics, even for overlapping windows (stride < kernel): deterministic and
// bit-exact on every backend. The argmax is an index within the input plane,
// ih * in_w + iw, so it does not depend on the layout or on a batch slice.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/bf16.h"
#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/plane_layout.h"
#include "kernels/sliding_window.h"
#include "kernels/transpose_tile.h"

namespace eqprop {

// True when the windows tile the input plane exactly (stride = kernel, no padding,
// nothing left over): every input element lies in exactly one window, so the CPU
// row paths below can walk each window once instead of gathering per element.
EQ_HD bool windows_tile_plane(const SlidingWindow& w) {
  return w.stride == w.kernel && w.padding == 0 && w.in_h == w.out_h * w.kernel && w.in_w == w.out_w * w.kernel;
}

// Tiling windows, row by row: f(o, first) for each, o = oh * out_w + ow its pooled
// element and first = the input index of its corner (kh, kw) = (0, 0); its element
// (kh, kw) is first + kh * in_w + kw.
template <class F>
void for_each_tiling_window(const SlidingWindow& w, const F& f) {
  for (std::int32_t oh = 0; oh < w.out_h; ++oh)
    for (std::int32_t ow = 0; ow < w.out_w; ++ow) f(oh * w.out_w + ow, oh * w.kernel * w.in_w + ow * w.kernel);
}

// Calls f(height, width) with a pooled plane's size as compile-time constants where
// it is square and of a size a conv net's 2x2 pooling makes (CIFAR-10's planes
// 16 -> 8 -> 4 -> 2 -> 1, FashionMNIST's 28 -> 14 -> 7), as run-time values
// otherwise (a 16x16 pooled plane ran no faster as constants). The 2x2 row paths
// below are loops over such a plane; at run-time sizes the compiler vectorises
// across pooled rows, which leaves the short planes (4x4, 2x2) to a scalar
// remainder with a data-dependent branch per select, while at constant sizes it
// unrolls and vectorises each plane. Measured on one AVX-512 core (Intel Xeon,
// family 6 model 207), OMP_NUM_THREADS=1 eqprop_pool_rows 16 50 (perf/pool_rows.cpp),
// best ms per call before -> after:
//
//   | planes (batch 16)                  | channels | pool          | unpool        |
//   |------------------------------------|----------|---------------|---------------|
//   | 32x32 -> 16x16 (run-time size)     | 128      | 0.43 -> 0.43  | 0.49 -> 0.46  |
//   | 16x16 -> 8x8                       | 256      | 0.32 -> 0.21  | 2.77 -> 0.25  |
//   | 8x8 -> 4x4                         | 512      | 1.90 -> 0.31  | 1.49 -> 0.29  |
//   | 2x2 -> 1x1                         | 512      | 0.18 -> 0.18  | 0.15 -> 0.06  |
//   | 28x28 -> 14x14                     | 16       | 0.28 -> 0.06  | 0.47 -> 0.04  |
//   | 14x14 -> 7x7                       | 32       | 0.31 -> 0.27  | 0.25 -> 0.03  |
template <class F>
void with_pooled_plane(std::int32_t height, std::int32_t width, const F& f) {
  using Size = std::int32_t;
  if (height == width) {
    switch (width) {
      case 1: return f(std::integral_constant<Size, 1>{}, std::integral_constant<Size, 1>{});
      case 2: return f(std::integral_constant<Size, 2>{}, std::integral_constant<Size, 2>{});
      case 4: return f(std::integral_constant<Size, 4>{}, std::integral_constant<Size, 4>{});
      case 7: return f(std::integral_constant<Size, 7>{}, std::integral_constant<Size, 7>{});
      case 8: return f(std::integral_constant<Size, 8>{}, std::integral_constant<Size, 8>{});
      case 14: return f(std::integral_constant<Size, 14>{}, std::integral_constant<Size, 14>{});
      default: break;
    }
  }
  f(height, width);
}

// a where pick_a, else b, bit for bit, as masks: no branch whatever the compiler
// makes of a scalar select. On random data a branch per select mispredicts about
// once per window; the 2x2 unpooling of planes the compiler leaves scalar uses it.
inline float select_bits(bool pick_a, float a, float b) {
  const std::uint32_t mask = 0u - static_cast<std::uint32_t>(pick_a);
  std::uint32_t bits_a, bits_b;
  std::memcpy(&bits_a, &a, sizeof bits_a);
  std::memcpy(&bits_b, &b, sizeof bits_b);
  const std::uint32_t bits = (bits_a & mask) | (bits_b & ~mask);
  float picked;
  std::memcpy(&picked, &bits, sizeof picked);
  return picked;
}

// True for a pooled row width the compiler vectorises a 2x2 row loop over: a
// constant of at least 7 (with_pooled_plane), a run-time width of at least 16.
template <class Width>
bool vectorised_row_width(Width width) {
  return std::is_same_v<Width, std::int32_t> ? width >= 16 : width >= 7;
}

// The CPU rows of a pooling between a channels-last tensor (NHWC, the pre-pooling
// output of a oneDNN convolution) and planes: a row is a tile of kPositionTile
// pooled positions of one sample, all channels, in blocks of kChannelBlock. The
// channels-last side is read or written kChannelBlock values at a time (one
// AVX-512 vector), in order within each input line; the planar side through a
// kPositionTile x kChannelBlock tile transposed in registers where whole
// (kernels/transpose_tile.h), one contiguous run of kPositionTile values per
// channel. Measured on one core (`OMP_NUM_THREADS=1 eqprop_pool_rows 16 50 nhwc`,
// perf/pool_rows.cpp; Intel Xeon with AMX), best ms per call, pool / unpool, for
// A: a row per channel block of a whole sample, its tile moved element by element;
// B: A with the tile transposed in registers; C (this): a row per position tile;
// and the CNHW planes of the im2col path:
//   16x16 -> 8x8, 256 channels:   A 0.56 / 0.51  B 0.33-0.44 / 0.39-0.41  C 0.25 / 0.29  CNHW 0.25 / 0.30
//   8x8 -> 4x4, 512 channels:     A 0.19 / 0.25  B 0.12 / 0.18            C 0.11 / 0.13  CNHW 0.30 / 0.25
//   32x32 -> 16x16, 128 channels: A 0.80 / 1.00  B 0.61 / 0.73-0.86       C 0.57 / 0.69  CNHW 0.45 / 0.46
// A walks a whole sample once per block, touching every (channels / 16)-th cache
// line of it; C streams each input line.
constexpr std::int32_t kChannelBlock = kTransposeTile;
constexpr std::int32_t kPositionTile = kTransposeTile;
template <class Count>
constexpr bool whole_channel_block = std::is_same_v<Count, std::integral_constant<std::int32_t, kChannelBlock>>;
// Whether the 2x2 pooling between `unpooled` and `pooled` takes these rows.
inline bool pools_channels_last(const SlidingWindow& window, const PlaneLayout& unpooled, const PlaneLayout& pooled,
                                 std::int32_t channels) {
  return window.kernel == 2 && windows_tile_plane(window) && unpooled.channels_last(channels) && pooled.planar();
}
// f(first, count) for each block of channels, count a constant for whole ones.
template <class F>
void for_each_channel_block(std::int32_t channels, const F& f) {
  std::int32_t first = 0;
  for (; first + kChannelBlock <= channels; first += kChannelBlock)
    f(first, std::integral_constant<std::int32_t, kChannelBlock>{});
  if (first < channels) f(first, channels - first);
}

// output = max over each window of input; argmax = where. Thread mapping: one
// pooled element per index.
struct MaxPoolOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* input;     // (batch, channels, in_h, in_w) in in_layout
  float* output;          // (batch, channels, out_h, out_w) in out_layout
  std::int32_t* argmax;   // (batch, channels, out_h, out_w) in out_layout: ih * in_w + iw
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  SlidingWindow window;
  std::int32_t channels;

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t oh, std::int32_t ow) const {
    const float* plane = input + in_layout.origin(b, c, window.in_plane());
    float best = 0.0f;
    std::int32_t best_index = -1;  // stays -1 only for a window entirely in the padding
    window.for_each_input(oh, ow, [&](std::int32_t index) {
      const float value = plane[std::int64_t(index) * in_layout.position_stride];
      // Strictly greater: ties keep the first; a NaN replaces a number, not a NaN.
      if (best_index < 0 || value > best || (value != value && best == best)) {
        best = value;
        best_index = index;
      }
    });
    const std::int64_t o = out_layout.at(b, c, std::int64_t(oh) * window.out_w + ow, window.out_plane());
    output[o] = best;
    argmax[o] = best_index;
  }

  EQ_HD void operator()(std::int64_t i) const { plane_element(*this, i, channels, window.out_h, window.out_w); }
  // CPU rows: a channels-last input pooled 2x2 into planes takes position tiles
  // (row_2x2_channels_last); otherwise one (b, c) plane per row.
  bool channels_last_rows() const { return pools_channels_last(window, in_layout, out_layout, channels); }
  std::int64_t row_count(std::int64_t count) const {
    return channels_last_rows()
               ? position_tile_count(count / (std::int64_t(channels) * window.out_plane()), window.out_plane())
               : count / window.out_plane();
  }
  // CPU: one (b, c) plane per row. Tiling windows (the 2x2 pooling of a conv net)
  // take a loop with the plane pointers hoisted and no bounds checks, with the
  // comparison of element(): the same values and argmax.
  void row(std::int64_t r) const {
    if (channels_last_rows()) return row_2x2_channels_last(r);
    if (!windows_tile_plane(window) || !in_layout.planar() || !out_layout.planar())
      return plane_row(*this, r, channels, window.out_h, window.out_w);
    const std::int32_t b = static_cast<std::int32_t>(r / channels), c = static_cast<std::int32_t>(r % channels);
    const float* plane = input + in_layout.origin(b, c, window.in_plane());
    float* out = output + out_layout.origin(b, c, window.out_plane());
    std::int32_t* where = argmax + out_layout.origin(b, c, window.out_plane());
    if (window.kernel == 2)
      return with_pooled_plane(window.out_h, window.out_w,
                               [&](auto out_h, auto out_w) { row_2x2(plane, out, where, out_h, out_w); });
    for_each_tiling_window(window, [&](std::int32_t o, std::int32_t first) {
      // The first element of the window, then the others with element()'s test
      // as selects (no data-dependent branch to mispredict).
      std::int32_t best_index = first;
      float best = plane[first];
      for (std::int32_t kh = 0; kh < window.kernel; ++kh)
        for (std::int32_t kw = kh == 0 ? 1 : 0; kw < window.kernel; ++kw) {
          const std::int32_t index = first + kh * window.in_w + kw;
          const float value = plane[index];
          const bool take = value > best || (value != value && best == best);
          best = take ? value : best;
          best_index = take ? index : best_index;
        }
      out[o] = best;
      where[o] = best_index;
    });
  }
  // The 2x2 tiling windows of a conv net, a pooled row at a time: the four elements
  // in row()'s order (top left, top right, bottom left, bottom right) and its
  // selects, in a loop over ow with fixed offsets that the compiler vectorises.
  // The pooled plane's size (window.out_h, window.out_w) maybe as constants
  // (with_pooled_plane).
  template <class Height, class Width>
  void row_2x2(const float* plane, float* out, std::int32_t* where, Height out_h, Width out_w) const {
    const std::int32_t in_w = 2 * out_w;
    for (std::int32_t oh = 0; oh < out_h; ++oh) {
      const float* top = plane + std::int64_t(2 * oh) * in_w;
      const float* bottom = top + in_w;
      float* out_row = out + std::int64_t(oh) * out_w;
      std::int32_t* where_row = where + std::int64_t(oh) * out_w;
      const std::int32_t row_first = 2 * oh * in_w;
      for (std::int32_t ow = 0; ow < out_w; ++ow) {
        const std::int32_t first = row_first + 2 * ow;
        float best = top[2 * ow];
        std::int32_t best_index = first;
        const float candidates[3] = {top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]};
        const std::int32_t offsets[3] = {1, in_w, in_w + 1};
        for (int k = 0; k < 3; ++k) {
          const float value = candidates[k];
          const bool take = value > best || (value != value && best == best);
          best = take ? value : best;
          best_index = take ? first + offsets[k] : best_index;
        }
        out_row[ow] = best;
        where_row[ow] = best_index;
      }
    }
  }
  // Row r of channels_last_rows(), a tile of pooled positions: row_2x2's four
  // elements and selects per window for kChannelBlock channels at once (a loop the
  // compiler vectorises), block by block, each block's results transposed into its
  // channels' planes.
  void row_2x2_channels_last(std::int64_t r) const {
    const PositionTile tile = position_tile(r, window.out_plane());
    for_each_channel_block(channels, [&](std::int32_t first, auto count) { pool_block(tile, first, count); });
  }
  // count: the block's channels, a constant for a whole block (plain vector code).
  template <class Count>
  void pool_block(const PositionTile& positions, std::int32_t first_channel, Count count) const {
    const std::int32_t in_w = window.in_w, out_w = window.out_w, out_plane = window.out_h * out_w;
    const std::int64_t step = in_layout.position_stride;  // = channels
    const float* sample = input + in_layout.origin(positions.sample, first_channel, window.in_plane());
    float best[kPositionTile][kChannelBlock];
    std::int32_t best_index[kPositionTile][kChannelBlock];
    const std::int32_t o0 = positions.first, tile = positions.count;
    for (std::int32_t t = 0; t < tile; ++t) {
      const std::int32_t oh = (o0 + t) / out_w, ow = (o0 + t) - oh * out_w;
      const std::int32_t first = 2 * oh * in_w + 2 * ow;
      const float* top_left = sample + first * step;
      const float* top_right = top_left + step;
      const float* bottom_left = top_left + in_w * step;
      const float* bottom_right = bottom_left + step;
      for (std::int32_t k = 0; k < count; ++k) {
        // row_2x2's selects in its order: top right, bottom left, bottom right.
        float value = top_left[k];
        std::int32_t index = first;
        const bool right = top_right[k] > value || (top_right[k] != top_right[k] && value == value);
        value = right ? top_right[k] : value;
        index = right ? first + 1 : index;
        const bool below = bottom_left[k] > value || (bottom_left[k] != bottom_left[k] && value == value);
        value = below ? bottom_left[k] : value;
        index = below ? first + in_w : index;
        const bool corner = bottom_right[k] > value || (bottom_right[k] != bottom_right[k] && value == value);
        value = corner ? bottom_right[k] : value;
        index = corner ? first + in_w + 1 : index;
        best[t][k] = value;
        best_index[t][k] = index;
      }
    }
    const std::int64_t o = out_layout.origin(positions.sample, first_channel, out_plane) + o0;
    if constexpr (whole_channel_block<Count>) {
      if (tile == kPositionTile) {
        const std::int64_t channel_step = std::int64_t(out_layout.channel_stride) * out_plane;
        transpose_tile(&best[0][0], kChannelBlock, output + o, channel_step);
        transpose_tile(&best_index[0][0], kChannelBlock, argmax + o, channel_step);
        return;
      }
    }
    for (std::int32_t k = 0; k < count; ++k) {
      const std::int64_t channel = out_layout.origin(positions.sample, first_channel + k, out_plane) + o0;
      for (std::int32_t t = 0; t < tile; ++t) {
        output[channel + t] = best[t][k];
        argmax[channel + t] = best_index[t][k];
      }
    }
  }
};

// output = input at each window's recorded argmax (MaxPoolOp's): max pooling with
// the argmax held fixed, the linear map whose adjoint is MaxUnpoolOp. The implicit
// gradient's couplings run on the adjoint through the free state's argmax with it.
// Thread mapping: one pooled element per index.
struct MaxPoolSelectOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* input;           // (batch, channels, in_h, in_w) in in_layout
  const std::int32_t* argmax;   // (batch, channels, out_h, out_w) in out_layout: ih * in_w + iw, or -1
  float* output;                // (batch, channels, out_h, out_w) in out_layout
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  SlidingWindow window;
  std::int32_t channels;

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t oh, std::int32_t ow) const {
    const std::int64_t o = out_layout.at(b, c, std::int64_t(oh) * window.out_w + ow, window.out_plane());
    const std::int32_t index = argmax[o];
    output[o] = index < 0 ? 0.0f : input[in_layout.at(b, c, index, window.in_plane())];
  }

  EQ_HD void operator()(std::int64_t i) const { plane_element(*this, i, channels, window.out_h, window.out_w); }
  std::int64_t row_count(std::int64_t count) const { return count / window.out_plane(); }
  void row(std::int64_t r) const { plane_row(*this, r, channels, window.out_h, window.out_w); }
};

// result (+)= unpool(pooled): each input-plane element gets the sum of the pooled
// values of the windows that cover it and whose argmax it is (one at most for
// non-overlapping windows), 0 if none. The adjoint of MaxPoolOp at fixed argmax.
// Thread mapping: one unpooled element per index.
struct MaxUnpoolOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* pooled;          // (batch, channels, out_h, out_w) in out_layout
  const std::int32_t* argmax;   // (batch, channels, out_h, out_w) in out_layout, from MaxPoolOp
  float* result;                // (batch, channels, in_h, in_w) in in_layout
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  SlidingWindow window;
  std::int32_t channels;
  bool accumulate;              // add to result instead of overwriting it
  // Both optional (null), neither with accumulate: the unpooled values less
  // subtrahend (in in_layout, as result), and written as bf16 (kernels/bf16.h) into
  // result_bf16 instead of result. The y of a bf16 library convolution
  // (models/conv_hopfield.cpp): from a reference state, P^T(s) - P^T(r), and in
  // bf16 without a further conversion pass of the library's own.
  const float* subtrahend = nullptr;
  std::uint16_t* result_bf16 = nullptr;

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t h, std::int32_t w) const {
    const std::int64_t base = out_layout.origin(b, c, window.out_plane());
    const std::int64_t step = out_layout.position_stride;
    const std::int32_t self = h * window.in_w + w;
    float sum = 0.0f;
    window.for_each_covering(h, w, [&](std::int64_t o) {
      if (argmax[base + o * step] == self) sum += pooled[base + o * step];
    });
    const std::int64_t at = in_layout.at(b, c, self, window.in_plane());
    if (subtrahend) sum -= subtrahend[at];
    if (result_bf16) {
      result_bf16[at] = bf16_bits(sum);
    } else {
      result[at] = accumulate ? result[at] + sum : sum;
    }
  }

  EQ_HD void operator()(std::int64_t i) const { plane_element(*this, i, channels, window.in_h, window.in_w); }
  // CPU rows: planes unpooled 2x2 into a channels-last result take position tiles
  // (row_2x2_channels_last); otherwise one (b, c) plane per row.
  bool channels_last_rows() const { return pools_channels_last(window, in_layout, out_layout, channels); }
  std::int64_t row_count(std::int64_t count) const {
    return channels_last_rows()
               ? position_tile_count(count / (std::int64_t(channels) * window.in_plane()), window.out_plane())
               : count / window.in_plane();
  }
  // CPU: one (b, c) plane per row. With tiling windows each element has exactly one
  // covering window, so walking the windows writes every element once with the
  // value element() computes (0 + pooled where it is the argmax, else 0): bit-exact,
  // without element()'s covering-window arithmetic per element.
  void row(std::int64_t r) const {
    if (channels_last_rows()) return row_2x2_channels_last(r);
    if (!windows_tile_plane(window) || !in_layout.planar() || !out_layout.planar() || result_bf16)
      return plane_row(*this, r, channels, window.in_h, window.in_w);
    const std::int32_t b = static_cast<std::int32_t>(r / channels), c = static_cast<std::int32_t>(r % channels);
    if (subtrahend) {
      // The plane as below, then less the subtrahend: element()'s sum - subtrahend.
      planar_row(b, c);
      float* plane = result + in_layout.origin(b, c, window.in_plane());
      const float* less = subtrahend + in_layout.origin(b, c, window.in_plane());
      for (std::int64_t i = 0; i < window.in_plane(); ++i) plane[i] -= less[i];
      return;
    }
    planar_row(b, c);
  }
  // Row (b, c) on planar layouts with tiling windows.
  void planar_row(std::int32_t b, std::int32_t c) const {
    const float* values = pooled + out_layout.origin(b, c, window.out_plane());
    const std::int32_t* where = argmax + out_layout.origin(b, c, window.out_plane());
    float* plane = result + in_layout.origin(b, c, window.in_plane());
    if (window.kernel == 2)
      return with_pooled_plane(window.out_h, window.out_w, [&](auto out_h, auto out_w) {
        if (vectorised_row_width(out_w))
          row_2x2(values, where, plane, out_h, out_w, [](bool pick_a, float a, float b) { return pick_a ? a : b; });
        else
          row_2x2(values, where, plane, out_h, out_w, select_bits);
      });
    for_each_tiling_window(window, [&](std::int32_t o, std::int32_t first) {
      for (std::int32_t kh = 0; kh < window.kernel; ++kh)
        for (std::int32_t kw = 0; kw < window.kernel; ++kw) {
          const std::int32_t self = first + kh * window.in_w + kw;
          const float sum = where[o] == self ? 0.0f + values[o] : 0.0f;
          plane[self] = accumulate ? plane[self] + sum : sum;
        }
    });
  }
  // The 2x2 tiling windows, a pooled row at a time: each of a window's four
  // elements gets row()'s value, in a loop over ow (the plane's size as in
  // MaxPoolOp::row_2x2). select(pick_a, a, b): a plain select where the compiler
  // vectorises the loop (vector blends), select_bits elsewhere, which it keeps
  // branch-free (plain selects became branches there, 4x slower on random argmax).
  template <class Height, class Width, class Select>
  void row_2x2(const float* values, const std::int32_t* where, float* plane, Height out_h, Width out_w,
               const Select& select) const {
    const std::int32_t in_w = 2 * out_w;
    for (std::int32_t oh = 0; oh < out_h; ++oh) {
      float* top = plane + std::int64_t(2 * oh) * in_w;
      float* bottom = top + in_w;
      const float* value_row = values + std::int64_t(oh) * out_w;
      const std::int32_t* where_row = where + std::int64_t(oh) * out_w;
      const std::int32_t row_first = 2 * oh * in_w;
      for (std::int32_t ow = 0; ow < out_w; ++ow) {
        const std::int32_t first = row_first + 2 * ow, at = where_row[ow];
        const float value = 0.0f + value_row[ow];
        const float top_left = select(at == first, value, 0.0f), top_right = select(at == first + 1, value, 0.0f),
                    bottom_left = select(at == first + in_w, value, 0.0f),
                    bottom_right = select(at == first + in_w + 1, value, 0.0f);
        top[2 * ow] = accumulate ? top[2 * ow] + top_left : top_left;
        top[2 * ow + 1] = accumulate ? top[2 * ow + 1] + top_right : top_right;
        bottom[2 * ow] = accumulate ? bottom[2 * ow] + bottom_left : bottom_left;
        bottom[2 * ow + 1] = accumulate ? bottom[2 * ow + 1] + bottom_right : bottom_right;
      }
    }
  }
  // Row r of channels_last_rows(), a tile of pooled positions: each window's four
  // elements get row_2x2's values, kChannelBlock channels at a time (contiguous
  // channels-last writes the compiler vectorises), each block's pooled values and
  // argmax transposed out of their planes.
  void row_2x2_channels_last(std::int64_t r) const {
    const PositionTile tile = position_tile(r, window.out_plane());
    for_each_channel_block(channels, [&](std::int32_t first, auto count) {
      using No = std::false_type;
      using Yes = std::true_type;
      if (accumulate) return unpool_block(tile, first, count, Yes{}, No{}, No{});
      if (result_bf16) return subtrahend ? unpool_block(tile, first, count, No{}, Yes{}, Yes{})
                                         : unpool_block(tile, first, count, No{}, No{}, Yes{});
      if (subtrahend) return unpool_block(tile, first, count, No{}, Yes{}, No{});
      unpool_block(tile, first, count, No{}, No{}, No{});
    });
  }
  // count as in MaxPoolOp::pool_block; Accumulate, Subtract, Bf16: accumulate,
  // subtrahend != null and result_bf16 != null, as constants.
  template <class Count, class Accumulate, class Subtract, class Bf16>
  void unpool_block(const PositionTile& positions, std::int32_t first_channel, Count count, Accumulate, Subtract,
                    Bf16) const {
    const std::int32_t in_w = window.in_w, out_w = window.out_w, out_plane = window.out_h * out_w;
    const std::int64_t step = in_layout.position_stride;  // = channels
    const std::int64_t sample_origin = in_layout.origin(positions.sample, first_channel, window.in_plane());
    float value[kPositionTile][kChannelBlock];
    std::int32_t where[kPositionTile][kChannelBlock];
    const std::int32_t o0 = positions.first, tile = positions.count;
    const std::int64_t o = out_layout.origin(positions.sample, first_channel, out_plane) + o0;
    bool transposed = false;
    if constexpr (whole_channel_block<Count>) {
      if (tile == kPositionTile) {
        const std::int64_t channel_step = std::int64_t(out_layout.channel_stride) * out_plane;
        transpose_tile(pooled + o, channel_step, &value[0][0], kChannelBlock);
        transpose_tile(argmax + o, channel_step, &where[0][0], kChannelBlock);
        transposed = true;
      }
    }
    for (std::int32_t k = 0; k < count && !transposed; ++k) {
      const std::int64_t channel = out_layout.origin(positions.sample, first_channel + k, out_plane) + o0;
      for (std::int32_t t = 0; t < tile; ++t) {
        value[t][k] = pooled[channel + t];
        where[t][k] = argmax[channel + t];
      }
    }
    for (std::int32_t t = 0; t < tile; ++t) {
      const std::int32_t oh = (o0 + t) / out_w, ow = (o0 + t) - oh * out_w;
      const std::int32_t first = 2 * oh * in_w + 2 * ow;
      const std::int64_t top_left = sample_origin + first * step, top_right = top_left + step;
      const std::int64_t bottom_left = top_left + in_w * step, bottom_right = bottom_left + step;
      if constexpr (Bf16::value && whole_channel_block<Count>) {
        // The four corners' values (less the subtrahend), then 16 conversions at once.
        float a[kChannelBlock], b[kChannelBlock], c[kChannelBlock], d[kChannelBlock];
        for (std::int32_t k = 0; k < kChannelBlock; ++k) {
          const float v = 0.0f + value[t][k];
          const std::int32_t at = where[t][k];
          a[k] = at == first ? v : 0.0f;
          b[k] = at == first + 1 ? v : 0.0f;
          c[k] = at == first + in_w ? v : 0.0f;
          d[k] = at == first + in_w + 1 ? v : 0.0f;
          if constexpr (Subtract::value) {
            a[k] -= subtrahend[top_left + k];
            b[k] -= subtrahend[top_right + k];
            c[k] -= subtrahend[bottom_left + k];
            d[k] -= subtrahend[bottom_right + k];
          }
        }
        bf16_bits_16(a, result_bf16 + top_left);
        bf16_bits_16(b, result_bf16 + top_right);
        bf16_bits_16(c, result_bf16 + bottom_left);
        bf16_bits_16(d, result_bf16 + bottom_right);
        continue;
      }
      // element()'s store of its sum at offset i (channel k of a corner).
      const auto store = [&](std::int64_t i, float sum) {
        if constexpr (Subtract::value) sum -= subtrahend[i];
        if constexpr (Bf16::value) {
          result_bf16[i] = bf16_bits(sum);
        } else {
          result[i] = Accumulate::value ? result[i] + sum : sum;
        }
      };
      for (std::int32_t k = 0; k < count; ++k) {
        const float v = 0.0f + value[t][k];  // element()'s sum: 0 + the pooled value
        const std::int32_t at = where[t][k];
        store(top_left + k, at == first ? v : 0.0f);
        store(top_right + k, at == first + 1 ? v : 0.0f);
        store(bottom_left + k, at == first + in_w ? v : 0.0f);
        store(bottom_right + k, at == first + in_w + 1 ? v : 0.0f);
      }
    }
  }
};

// output = (sum over each window of input) / K^2, the padding counted as zeros.
// Thread mapping: one pooled element per index, a serial sum in (kh, kw) order.
struct AvgPoolOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* input;   // (batch, channels, in_h, in_w) in in_layout
  float* output;        // (batch, channels, out_h, out_w) in out_layout
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  SlidingWindow window;
  std::int32_t channels;

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t oh, std::int32_t ow) const {
    const float* plane = input + in_layout.origin(b, c, window.in_plane());
    const std::int64_t step = in_layout.position_stride;
    float sum = 0.0f;
    window.for_each_input(oh, ow, [&](std::int32_t index) { sum += plane[index * step]; });
    output[out_layout.at(b, c, std::int64_t(oh) * window.out_w + ow, window.out_plane())] =
        sum / static_cast<float>(window.kernel * window.kernel);
  }

  EQ_HD void operator()(std::int64_t i) const { plane_element(*this, i, channels, window.out_h, window.out_w); }
  std::int64_t row_count(std::int64_t count) const { return count / window.out_plane(); }
  void row(std::int64_t r) const { plane_row(*this, r, channels, window.out_h, window.out_w); }
};

// result (+)= (sum of the pooled values of the windows covering each element) / K^2:
// the adjoint of AvgPoolOp. Thread mapping: one unpooled element per index, a
// serial sum by increasing (oh, ow).
struct AvgUnpoolOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* pooled;  // (batch, channels, out_h, out_w) in out_layout
  float* result;        // (batch, channels, in_h, in_w) in in_layout
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  SlidingWindow window;
  std::int32_t channels;
  bool accumulate;      // add to result instead of overwriting it

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t h, std::int32_t w) const {
    const float* plane = pooled + out_layout.origin(b, c, window.out_plane());
    const std::int64_t step = out_layout.position_stride;
    float sum = 0.0f;
    window.for_each_covering(h, w, [&](std::int64_t o) { sum += plane[o * step]; });
    const float value = sum / static_cast<float>(window.kernel * window.kernel);
    float& target = result[in_layout.at(b, c, std::int64_t(h) * window.in_w + w, window.in_plane())];
    target = accumulate ? target + value : value;
  }

  EQ_HD void operator()(std::int64_t i) const { plane_element(*this, i, channels, window.in_h, window.in_w); }
  std::int64_t row_count(std::int64_t count) const { return count / window.in_plane(); }
  void row(std::int64_t r) const { plane_row(*this, r, channels, window.in_h, window.in_w); }
};

}  // namespace eqprop
