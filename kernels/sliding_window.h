// The geometry shared by convolution (kernels/im2col.h) and pooling
// (kernels/max_pool.h): a kernel x kernel window sliding over an (in_h, in_w)
// plane with a stride and a zero (or -inf) padding on every side, giving an
// (out_h, out_w) plane of windows. PyTorch's Conv2d / MaxPool2d arithmetic:
//   out = (in + 2 * padding - kernel) / stride + 1   (floor; trailing rows that
//   do not fill a window are dropped).
//
// Two enumerations, each the adjoint of the other:
//  - forward: window (oh, ow) covers input rows oh*stride - padding + kh,
//    kh in [0, kernel) (some in the padding);
//  - adjoint: input row h is covered by the windows oh in covering_first(h) ..
//    covering_last(h), at tap kh = h + padding - oh*stride.
// The adjoint enumeration is what makes col2im and unpooling gathers (one output
// element per thread, a serial sum in a fixed order): no atomics, bit-exact.
#pragma once

#include <cstdint>

#include "kernels/hostdevice.h"

namespace eqprop {

struct SlidingWindow {
  std::int32_t in_h, in_w;    // input plane
  std::int32_t out_h, out_w;  // plane of windows
  std::int32_t kernel, stride, padding;

  // First input row (column) of window row oh (column ow); negative in the padding.
  EQ_HD std::int32_t start(std::int32_t o) const { return o * stride - padding; }

  // The windows along one axis (out of `out`) that cover input coordinate x:
  // [first, last], empty when first > last. x + padding >= 0 always. The
  // dividends are >= 0, so the divisions are unsigned (on a GPU, which has no
  // integer divider, cheaper than signed ones; the same quotients).
  EQ_HD std::int32_t covering_first(std::int32_t x) const {
    const std::int32_t lowest = x + padding - kernel + 1;  // start(o) >= x - kernel + 1
    return lowest <= 0 ? 0
                       : static_cast<std::int32_t>(static_cast<std::uint32_t>(lowest + stride - 1) /
                                                   static_cast<std::uint32_t>(stride));
  }
  EQ_HD std::int32_t covering_last(std::int32_t x, std::int32_t out) const {
    const auto highest = static_cast<std::int32_t>(static_cast<std::uint32_t>(x + padding) /
                                                   static_cast<std::uint32_t>(stride));  // start(o) <= x
    return highest < out - 1 ? highest : out - 1;
  }

  EQ_HD std::int64_t in_plane() const { return std::int64_t(in_h) * in_w; }
  EQ_HD std::int64_t out_plane() const { return std::int64_t(out_h) * out_w; }
};

// Windows along one axis; 0 when the padded input is smaller than the kernel.
inline std::int32_t sliding_output_size(std::int32_t in, std::int32_t kernel, std::int32_t stride,
                                        std::int32_t padding) {
  const std::int32_t room = in + 2 * padding - kernel;
  return room < 0 ? 0 : room / stride + 1;
}

inline SlidingWindow make_sliding_window(std::int32_t in_h, std::int32_t in_w, std::int32_t kernel,
                                         std::int32_t stride, std::int32_t padding) {
  return {in_h,
          in_w,
          sliding_output_size(in_h, kernel, stride, padding),
          sliding_output_size(in_w, kernel, stride, padding),
          kernel,
          stride,
          padding};
}

}  // namespace eqprop
