// Convolution as GEMM: im2col unfolds the input into a column matrix so that a
// KxK convolution (stride S, padding P) is one GEMM on the Backend, and col2im
// folds a column matrix back (the adjoint). The model-side composition is
// models/conv_ops.{h,cpp}; the geometry is kernels/sliding_window.h.
//
// Shapes: x (N, C, H, W), y (N, Co, OH, OW), weights (Co, C, K, K) as PyTorch
// stores them, i.e. a row-major (Co, C*K*K) matrix. Write NP = N*OH*OW (positions)
// and CKK = C*K*K (patch size).
//   columns (CKK, NP), row-major: row (c, kh, kw), column (b, oh, ow) holds
//   x[b, c, oh*S - P + kh, ow*S - P + kw] (0 in the padding).
// With y_cm the channel-major (Co, NP) view of y, the three products of a
// convolutional Hopfield layer are single row-major GEMMs of 2*Co*CKK*NP FLOPs:
//   forward conv    y_cm (Co, NP)      = W (Co, CKK) . columns (CKK, NP)   gemm(no, no)
//   transposed conv dcols (CKK, NP)    = W^T (CKK, Co) . y_cm (Co, NP)     gemm(yes, no), then col2im
//   kernel update   dW (Co, CKK)       = y_cm (Co, NP) . columns^T (NP, CKK) gemm(no, yes)
// The kernel update's sum over the batch and the positions is the GEMM's k = NP
// (the largest dimension): one call, the reduction inside BLAS, no atomics.
//
// Why columns (CKK, NP) and y as (Co, NP), not (NP, CKK) and (NP, Co) (NHWC)? Both
// orientations make each product one GEMM of the same FLOPs; what surrounds the
// GEMMs decides:
//  1. (Co, NP) is channel-major (CNHW): each channel's N*OH*OW outputs are one
//     contiguous row made of whole (OH, OW) planes. Converting to or from the NCHW
//     states moves contiguous runs of OH*OW floats, coalesced on both sides, and
//     fuses the bias add (PlaneRelayoutOp); a model that keeps its conv states
//     channel-major skips the conversion (kernels/plane_layout.h). The NHWC result
//     of the other orientation needs a true transpose per sample (channels
//     innermost against width innermost), strided on one side.
//  2. im2col writes the column matrix in order (thread i writes columns[i]) and
//     reads along a plane row with stride S, so both sides coalesce on the GPU.
//  3. Every product keeps NP as a GEMM dimension (n, n, k), so the small ones
//     (Co = 3..512, CKK = 27..4608) never make a degenerate GEMM.
// The price of im2col over an implicit GEMM is memory: columns holds K*K/S^2 times
// the input (9x for 3x3, stride 1), written once and read once per product; the
// workspace is the caller's (models/conv_ops.h), so the hot path allocates nothing.
//
// Both ops are pure functions of logical indices (sample, channel, row, column),
// never of threads; col2im is a gather (each output element sums the column
// entries that fold onto it, in a fixed order: windows by increasing (oh, ow)), so
// it needs no atomics and is bit-exact on every backend and launch shape.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/plane_layout.h"
#include "kernels/sliding_window.h"

namespace eqprop {

// columns = im2col(input). Thread mapping: one index per column-matrix entry, in
// row-major order. Bit-exact (a copy).
struct Im2colOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* input;       // (batch, channels, in_h, in_w) in layout
  float* columns;           // (channels * kernel * kernel, positions), row stride positions
  PlaneLayout layout;       // of input
  SlidingWindow window;
  std::int32_t channels;
  std::int32_t positions;   // batch * out_h * out_w

  // x[b, c, ih, iw], 0 outside the plane (the zero padding).
  EQ_HD float input_at(std::int32_t b, std::int32_t c, std::int32_t ih, std::int32_t iw) const {
    if (ih < 0 || ih >= window.in_h || iw < 0 || iw >= window.in_w) return 0.0f;
    return input[layout.at(b, c, std::int64_t(ih) * window.in_w + iw, window.in_plane())];
  }

  // GPU: the flat index splits into (row, column) in 32 bits where the column
  // matrix has fewer than 2^32 entries (divide_index, kernels/plane_layout.h);
  // the row (< channels * kernel^2) and the column (< positions) are int32, so the
  // rest is unsigned 32-bit arithmetic (cheaper than signed) whatever the size.
  EQ_HD void operator()(std::int64_t i) const {
    const IndexDivision entry = divide_index(i, positions);
    const auto row = static_cast<std::uint32_t>(entry.quotient), column = static_cast<std::uint32_t>(entry.remainder);
    const auto kernel = static_cast<std::uint32_t>(window.kernel), out_w = static_cast<std::uint32_t>(window.out_w);
    const std::uint32_t taps = kernel * kernel, out_plane = static_cast<std::uint32_t>(window.out_h) * out_w;
    const std::uint32_t c = row / taps, tap = row - c * taps, kh = tap / kernel, kw = tap - kh * kernel;
    const std::uint32_t b = column / out_plane, q = column - b * out_plane, oh = q / out_w, ow = q - oh * out_w;
    columns[i] = input_at(static_cast<std::int32_t>(b), static_cast<std::int32_t>(c),
                          window.start(static_cast<std::int32_t>(oh)) + static_cast<std::int32_t>(kh),
                          window.start(static_cast<std::int32_t>(ow)) + static_cast<std::int32_t>(kw));
  }

  // CPU: one column-matrix row (c, kh, kw) per row, no division per element; the
  // plane and line pointers are hoisted out of the inner loop, and a line in the
  // vertical padding is a run of zeros (the same values as input_at, a copy).
  std::int64_t row_count(std::int64_t count) const { return count / positions; }
  void row(std::int64_t r) const {
    const std::int32_t taps = window.kernel * window.kernel;
    const std::int32_t c = static_cast<std::int32_t>(r / taps), tap = static_cast<std::int32_t>(r % taps);
    const std::int32_t kh = tap / window.kernel, kw = tap % window.kernel;
    const std::int32_t batch = positions / (window.out_h * window.out_w);
    float* out = columns + r * positions;
    if (!layout.planar()) {
      for (std::int32_t b = 0; b < batch; ++b)
        for (std::int32_t oh = 0; oh < window.out_h; ++oh)
          for (std::int32_t ow = 0; ow < window.out_w; ++ow)
            *out++ = input_at(b, c, window.start(oh) + kh, window.start(ow) + kw);
      return;
    }
    if (window.padding == 0) {
      // Every tap inside the plane: no bounds to check, one pointer per output line.
      // The CIFAR-10 recipe's last layer (512 channels, 4x4 -> 2x2, batch 16; it is
      // routed to im2col + GEMM on AMX): 0.39 -> 0.19 ms per call on one core
      // (`OMP_NUM_THREADS=1 eqprop_conv_rows`).
      const std::int64_t sample_step = std::int64_t(layout.sample_stride) * window.in_plane();
      const std::int64_t line_step = std::int64_t(window.stride) * window.in_w;
      const float* first = input + layout.origin(0, c, window.in_plane()) + std::int64_t(kh) * window.in_w + kw;
      for (std::int32_t b = 0; b < batch; ++b, first += sample_step) {
        const float* line = first;
        for (std::int32_t oh = 0; oh < window.out_h; ++oh, line += line_step)
          for (std::int32_t ow = 0; ow < window.out_w; ++ow) *out++ = line[std::int64_t(ow) * window.stride];
      }
      return;
    }
    for (std::int32_t b = 0; b < batch; ++b) {
      const float* plane = input + layout.origin(b, c, window.in_plane());
      for (std::int32_t oh = 0; oh < window.out_h; ++oh) {
        const std::int32_t ih = window.start(oh) + kh;
        if (ih < 0 || ih >= window.in_h) {
          for (std::int32_t ow = 0; ow < window.out_w; ++ow) *out++ = 0.0f;
          continue;
        }
        const float* line = plane + std::int64_t(ih) * window.in_w;
        for (std::int32_t ow = 0; ow < window.out_w; ++ow) {
          const std::int32_t iw = window.start(ow) + kw;
          *out++ = iw >= 0 && iw < window.in_w ? line[iw] : 0.0f;
        }
      }
    }
  }
};

// output (+)= col2im(columns): every input-plane element gets the sum of the column
// entries of the windows that cover it (the adjoint of Im2colOp). Thread mapping:
// one index per output element in logical (b, c, h, w) order, a serial sum over
// the covering windows by increasing (oh, ow): deterministic, bit-exact.
struct Col2imOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const float* columns;    // (channels * kernel * kernel, positions), row stride positions
  float* output;           // (batch, channels, in_h, in_w) in layout
  PlaneLayout layout;      // of output
  SlidingWindow window;
  std::int32_t channels;
  std::int32_t positions;  // batch * out_h * out_w
  bool accumulate;         // add to output instead of overwriting it

  EQ_HD float gather(std::int32_t b, std::int32_t c, std::int32_t h, std::int32_t w) const {
    const std::int32_t oh_first = window.covering_first(h), oh_last = window.covering_last(h, window.out_h);
    const std::int32_t ow_first = window.covering_first(w), ow_last = window.covering_last(w, window.out_w);
    const float* channel_rows = columns + std::int64_t(c) * window.kernel * window.kernel * positions;
    const std::int64_t sample_column = std::int64_t(b) * window.out_h * window.out_w;
    float sum = 0.0f;
    for (std::int32_t oh = oh_first; oh <= oh_last; ++oh) {
      const std::int32_t kh = h + window.padding - oh * window.stride;
      const float* tap_rows = channel_rows + std::int64_t(kh) * window.kernel * positions + sample_column +
                              std::int64_t(oh) * window.out_w;
      for (std::int32_t ow = ow_first; ow <= ow_last; ++ow) {
        const std::int32_t kw = w + window.padding - ow * window.stride;
        sum += tap_rows[std::int64_t(kw) * positions + ow];
      }
    }
    return sum;
  }

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t h, std::int32_t w) const {
    const float sum = gather(b, c, h, w);
    float& target = output[layout.at(b, c, std::int64_t(h) * window.in_w + w, window.in_plane())];
    target = accumulate ? target + sum : sum;
  }

  EQ_HD void operator()(std::int64_t i) const { plane_element(*this, i, channels, window.in_h, window.in_w); }
  std::int64_t row_count(std::int64_t count) const { return count / window.in_plane(); }
  // CPU: one (b, c) plane per row, tap by tap instead of element by element (no
  // covering-window arithmetic per element; each tap's column row is read in
  // order). For one element, windows by increasing (oh, ow) are taps by decreasing
  // (kh, kw), so adding the taps in that order into a plane that starts at +0
  // performs exactly element()'s additions: bit-exact. Accumulating calls take
  // element() (the sum must be formed before it is added to the old value).
  void row(std::int64_t r) const {
    const std::int32_t batch = positions / (window.out_h * window.out_w);
    // Rows by channel, then sample: consecutive rows read the same channel's tap
    // rows of the column matrix in order (by sample, channels apart, each row would
    // jump kernel^2 rows of it). With the unchecked windows below (no padding), one
    // core, batch 16 (`OMP_NUM_THREADS=1 eqprop_conv_rows`): 4x4 -> 2x2, 512
    // channels, 0.54 -> 0.36 ms per call; 8x8 with padding, 256 channels, 2.08 -> 1.0-1.1.
    const std::int32_t c = static_cast<std::int32_t>(r / batch), b = static_cast<std::int32_t>(r % batch);
    if (accumulate || !layout.planar()) {
      for (std::int32_t h = 0; h < window.in_h; ++h)
        for (std::int32_t w = 0; w < window.in_w; ++w) element(b, c, h, w);
      return;
    }
    float* plane = output + layout.origin(b, c, window.in_plane());
    for (std::int64_t i = 0; i < window.in_plane(); ++i) plane[i] = 0.0f;
    const float* channel_rows = columns + std::int64_t(c) * window.kernel * window.kernel * positions;
    const std::int64_t sample_column = std::int64_t(b) * window.out_h * window.out_w;
    for (std::int32_t kh = window.kernel - 1; kh >= 0; --kh)
      for (std::int32_t kw = window.kernel - 1; kw >= 0; --kw) {
        const float* tap = channel_rows + std::int64_t(kh * window.kernel + kw) * positions + sample_column;
        if (window.padding == 0) {
          // Every tap inside the plane (Im2colOp::row): no bounds to check.
          float* line = plane + std::int64_t(kh) * window.in_w + kw;
          for (std::int32_t oh = 0; oh < window.out_h; ++oh, line += std::int64_t(window.stride) * window.in_w)
            for (std::int32_t ow = 0; ow < window.out_w; ++ow)
              line[std::int64_t(ow) * window.stride] += tap[std::int64_t(oh) * window.out_w + ow];
          continue;
        }
        for (std::int32_t oh = 0; oh < window.out_h; ++oh) {
          const std::int32_t ih = window.start(oh) + kh;
          if (ih < 0 || ih >= window.in_h) continue;
          float* line = plane + std::int64_t(ih) * window.in_w;
          const float* source = tap + std::int64_t(oh) * window.out_w;
          for (std::int32_t ow = 0; ow < window.out_w; ++ow) {
            const std::int32_t iw = window.start(ow) + kw;
            if (iw >= 0 && iw < window.in_w) line[iw] += source[ow];
          }
        }
      }
  }
};

}  // namespace eqprop
