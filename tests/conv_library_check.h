// The checks of the library convolutions against a naive double reference, shared
// by tests/test_conv_library.cpp (CPU: oneDNN, im2col) and
// tests/cuda/test_cuda_conv_library.cpp (cuDNN). The tolerances are explained there.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/bf16.h"
#include "kernels/counting_backend.h"
#include "kernels/device_buffer.h"
#include "kernels/dnnl_isa.h"
#include "kernels/error.h"
#include "kernels/plane_layout.h"
#include "models/conv_ops.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop::test::conv_library {

using eqprop::Backend;
using eqprop::ConvolutionPath;
using eqprop::ConvScratch;
using eqprop::ConvShape;
using eqprop::GemmPrecision;
using Floats = std::vector<float>;
using Doubles = std::vector<double>;

constexpr double kFp32Tolerance = 1e-5;
// bf16 keeps 8 significant bits: u = 2^-8 per rounded operand, 2u + u^2 per product.
constexpr double kBf16Tolerance = 2.0 / 256.0 + 1.0 / 65536.0 + 1e-5;

// C = 1 and Co = 3, stride 2, padding 0, 1, 2, kernels 1 to 5, odd planes, and last
// two convolutions onto a 2x2 plane, with and without padding (the shapes that
// kernels/dnnl_convolution_routes.h may route to im2col)
// (ConvShape{batch, in_channels, in_h, in_w, out_channels, kernel, stride, padding}).
inline const ConvShape kCases[] = {{2, 1, 7, 6, 3, 3, 1, 1},  {3, 4, 9, 8, 5, 3, 2, 0},  {2, 3, 8, 8, 3, 3, 2, 2},
                                   {1, 5, 6, 7, 2, 2, 1, 0},  {4, 8, 16, 16, 16, 3, 1, 1}, {2, 3, 10, 9, 4, 5, 2, 2},
                                   {3, 2, 5, 5, 3, 1, 1, 0},  {2, 16, 8, 8, 32, 3, 1, 1}, {2, 8, 4, 4, 8, 3, 1, 0},
                                   {3, 4, 2, 2, 6, 3, 1, 1}};
// kCases' convolutions onto a 2x2 plane: unpadded, padded.
inline constexpr int kValidOntoTwoByTwo = 8, kPaddedOntoTwoByTwo = 9;

inline std::string text(const ConvShape& c) {
  return "N" + std::to_string(c.batch) + " C" + std::to_string(c.in_channels) + " " + std::to_string(c.in_h) + "x" +
         std::to_string(c.in_w) + " Co" + std::to_string(c.out_channels) + " K" + std::to_string(c.kernel) + " S" +
         std::to_string(c.stride) + " P" + std::to_string(c.padding);
}

// The three products in double, and each element's sum of |products|, all NCHW.
struct Reference {
  Doubles y, y_abs, x, x_abs, g, g_abs;
};

inline Reference naive(const ConvShape& s, const Floats& x, const Floats& w, const Floats& y_in) {
  const int oh_n = s.out_h(), ow_n = s.out_w(), k = s.kernel;
  Reference r;
  r.y.assign(s.output_size(), 0.0), r.y_abs = r.y;
  r.x.assign(s.input_size(), 0.0), r.x_abs = r.x;
  r.g.assign(s.weight_size(), 0.0), r.g_abs = r.g;
  for (int b = 0; b < s.batch; ++b)
    for (int co = 0; co < s.out_channels; ++co)
      for (int oh = 0; oh < oh_n; ++oh)
        for (int ow = 0; ow < ow_n; ++ow) {
          const std::size_t yi = ((std::size_t(b) * s.out_channels + co) * oh_n + oh) * ow_n + ow;
          for (int c = 0; c < s.in_channels; ++c)
            for (int kh = 0; kh < k; ++kh)
              for (int kw = 0; kw < k; ++kw) {
                const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
                if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                const std::size_t xi = ((std::size_t(b) * s.in_channels + c) * s.in_h + ih) * s.in_w + iw;
                const std::size_t wi = ((std::size_t(co) * s.in_channels + c) * k + kh) * k + kw;
                const double forward = double(w[wi]) * x[xi], transpose = double(w[wi]) * y_in[yi],
                             update = double(y_in[yi]) * x[xi];
                r.y[yi] += forward, r.y_abs[yi] += std::fabs(forward);
                r.x[xi] += transpose, r.x_abs[xi] += std::fabs(transpose);
                r.g[wi] += update, r.g_abs[wi] += std::fabs(update);
              }
        }
  return r;
}

inline void check_close(const std::string& where, const Floats& actual, const Doubles& expected, const Doubles& magnitude,
                 double tolerance) {
  REQUIRE(actual.size() == expected.size());
  std::size_t failures = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double budget = tolerance * magnitude[i] + 1e-30;
    if (!(std::fabs(double(actual[i]) - expected[i]) <= budget) && failures++ == 0)
      FAIL_CHECK(where << ": element " << i << " is " << actual[i] << ", expected " << expected[i] << " +- "
                       << budget);
  }
  CHECK_MESSAGE(failures == 0, where << ": " << failures << " of " << actual.size() << " elements out of tolerance");
}

inline Floats download(Backend& backend, const eqprop::DeviceBuffer<float>& buffer, std::size_t count) {
  Floats host(count);
  backend.copy_to_host(host.data(), buffer.data(), count * sizeof(float));
  return host;
}

inline eqprop::DeviceBuffer<float> upload(Backend& backend, const Floats& host) {
  eqprop::DeviceBuffer<float> buffer(backend, host.size());
  backend.copy_to_device(buffer.data(), host.data(), host.size() * sizeof(float));
  return buffer;
}

// values (NCHW order) rounded to bf16 (kernels/bf16.h) and placed in `layout`, on the
// device: a bf16 operand as the conv network's passes hand it to a library.
inline eqprop::DeviceBuffer<std::uint16_t> bf16_copy(Backend& backend, const Floats& values, std::int32_t batch,
                                                     std::int32_t channels, std::int32_t plane,
                                                     const eqprop::PlaneLayout& layout) {
  std::vector<std::uint16_t> host(values.size());
  for (std::int32_t b = 0; b < batch; ++b)
    for (std::int32_t c = 0; c < channels; ++c)
      for (std::int32_t p = 0; p < plane; ++p)
        host[layout.at(b, c, p, plane)] = eqprop::bf16_bits(values[(std::size_t(b) * channels + c) * plane + p]);
  eqprop::DeviceBuffer<std::uint16_t> buffer(backend, values.size());
  buffer.copy_from_host(host);
  return buffer;
}

// The layout of y (and of the pre-pooling tensors a model passes as y).
enum class YLayout { nchw, cnhw, nhwc };

inline eqprop::PlaneLayout layout_of(YLayout layout, const ConvShape& shape) {
  switch (layout) {
    case YLayout::cnhw: return eqprop::cnhw_layout(shape.batch);
    case YLayout::nhwc: return eqprop::nhwc_layout(shape.out_channels);
    case YLayout::nchw: break;
  }
  return eqprop::nchw_layout(shape.out_channels);
}

// Runs the three products of every case on `path` at `precision` and checks them
// against the reference; the weight update runs as the EP update does, twice with
// beta = 0 then 1 (opposite signs: -0.5 at s-, +1.5 at s+ = s-, net +1).
inline void check_path(Backend& backend, ConvolutionPath path, GemmPrecision precision, double tolerance,
                       YLayout y_layout) {
  backend.set_convolution_path(path);
  backend.set_gemm_precision(precision);
  std::mt19937 rng(1234);
  for (const ConvShape& c : kCases) {
    ConvShape shape = c;
    // The weights are constant across the three calls, as in a training step (a
    // backend may keep converted copies of them: kernels/convolution_library.h).
    shape.weights_version = eqprop::fresh_weights_version();
    const Floats x = eqprop::test::random_vector(rng, shape.input_size(), -1.0f, 1.0f);
    const Floats w = eqprop::test::random_vector(rng, shape.weight_size(), -1.0f, 1.0f);
    const Floats y_nchw = eqprop::test::random_vector(rng, shape.output_size(), -1.0f, 1.0f);
    const Reference r = naive(shape, x, w, y_nchw);
    const int plane = shape.out_h() * shape.out_w();
    // y in the asked layout: element (b, co, p) at layout.at(b, co, p, plane).
    shape.output_layout = layout_of(y_layout, c);
    const eqprop::PlaneLayout layout = shape.output_layout;
    Floats y_in(y_nchw.size());
    for (int b = 0; b < c.batch; ++b)
      for (int co = 0; co < c.out_channels; ++co)
        for (int p = 0; p < plane; ++p)
          y_in[layout.at(b, co, p, plane)] = y_nchw[(std::size_t(b) * c.out_channels + co) * plane + p];
    const char* layout_names[] = {"", " (CNHW y)", " (NHWC y)"};
    const std::string where = text(c) + layout_names[static_cast<int>(y_layout)];
    ConvScratch scratch(backend, shape);
    auto x_d = upload(backend, x), w_d = upload(backend, w), y_d = upload(backend, y_in);
    eqprop::DeviceBuffer<float> out(backend, shape.output_size()), back(backend, shape.input_size()),
        g(backend, shape.weight_size());
    eqprop::conv2d_forward(backend, shape, x_d.data(), w_d.data(), nullptr, out.data(), scratch.workspace());
    const Floats y_placed = download(backend, out, shape.output_size());
    Floats y_out(y_placed.size());
    for (int b = 0; b < c.batch; ++b)
      for (int co = 0; co < c.out_channels; ++co)
        for (int p = 0; p < plane; ++p)
          y_out[(std::size_t(b) * c.out_channels + co) * plane + p] = y_placed[layout.at(b, co, p, plane)];
    check_close(where + " forward", y_out, r.y, r.y_abs, tolerance);
    eqprop::conv2d_transpose(backend, shape, y_d.data(), w_d.data(), back.data(), scratch.workspace());
    check_close(where + " backward-data", download(backend, back, shape.input_size()), r.x, r.x_abs, tolerance);
    eqprop::conv2d_weight_gradient(backend, shape, x_d.data(), y_d.data(), -0.5f, 0.0f, g.data(),
                                   scratch.workspace());
    eqprop::conv2d_weight_gradient(backend, shape, x_d.data(), y_d.data(), 1.5f, 1.0f, g.data(),
                                   scratch.workspace());
    Doubles g_abs = r.g_abs;
    for (double& a : g_abs) a *= 2.0;  // |-0.5| + |1.5| of each product
    check_close(where + " backward-weights", download(backend, g, shape.weight_size()), r.g, g_abs, tolerance);
  }
}

inline bool cpu_has_library() { return eqprop::built_with_dnnl(); }

}  // namespace eqprop::test::conv_library
