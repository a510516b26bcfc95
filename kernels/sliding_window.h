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

  // f(index) for every input element of window (oh, ow) inside the plane (the
  // padding skipped), index = ih * in_w + iw, in window order (kh, then kw).
  template <class F>
  EQ_HD void for_each_input(std::int32_t oh, std::int32_t ow, const F& f) const {
    for (std::int32_t kh = 0; kh < kernel; ++kh) {
      const std::int32_t ih = start(oh) + kh;
      if (ih < 0 || ih >= in_h) continue;
      for (std::int32_t kw = 0; kw < kernel; ++kw) {
        const std::int32_t iw = start(ow) + kw;
        if (iw >= 0 && iw < in_w) f(ih * in_w + iw);
      }
    }
  }
  // f(o) for every window covering input element (h, w), o = oh * out_w + ow, by
  // increasing (oh, ow): the adjoint enumeration.
  template <class F>
  EQ_HD void for_each_covering(std::int32_t h, std::int32_t w, const F& f) const {
    const std::int32_t ow_first = covering_first(w), ow_last = covering_last(w, out_w);
    for (std::int32_t oh = covering_first(h); oh <= covering_last(h, out_h); ++oh)
      for (std::int32_t ow = ow_first; ow <= ow_last; ++ow) f(std::int64_t(oh) * out_w + ow);
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
