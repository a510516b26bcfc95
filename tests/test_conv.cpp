// The convolution and pooling building blocks (kernels/im2col.h, kernels/max_pool.h,
// kernels/plane_layout.h, models/conv_ops.h) on the CPU backend, against naive
// nested loops in double written here (STYLE.md, habits 3 and 5).
//
// Shapes: every combination of channels 1->1, 1->3, 3->8, 5->2, stride 1 and 2,
// padding 0 and 1, batch 1 and 3, kernels 1, 2, 3 and 5, with random (mostly odd,
// often not window-aligned) plane sizes; pooling over 2x2/2, 3x3/2 pad 1,
// overlapping 2x2/1 and 3x3/1 pad 1, 3x3/3 and 1x1.
//
// Tolerances follow each piece's declared determinism:
//  - the GEMM-based results (forward, transposed conv, kernel update) are exact up
//    to summation order: |float - double| <= (terms + 2) u sum|products|, u = 2^-24
//    (the classic bound for a sum of `terms` products in float);
//  - the adjoint identities <conv(x), y> = <x, conv_T(y)> and the pooling ones hold
//    to the same bound on the triple sum sum |y| |w| |x|;
//  - max pooling, its argmax and non-overlapping max unpooling are exact (a
//    selection); average pooling is within a few u of its magnitude;
//  - every op's CPU run() (row paths, OpenMP) equals a plain loop over op(i) bit
//    for bit, in forward, reverse and shuffled index order: the GPU runs op(i).
// Each tolerance check reports the largest fraction of its budget any element used.
#include <doctest/doctest.h>

#include <algorithm>
#include <exception>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/bf16.h"
#include "kernels/channels_last_bf16.h"
#include "kernels/device_buffer.h"
#include "kernels/im2col.h"
#include "kernels/max_pool.h"
#include "kernels/plane_layout.h"
#include "kernels/planes_from_bf16.h"
#include "kernels/transpose_tile.h"
#include "models/conv_ops.h"
#include "tests/test_util.h"

namespace {

using eqprop::Backend;
using eqprop::ConvScratch;
using eqprop::ConvShape;
using eqprop::DeviceBuffer;
using eqprop::PlaneLayout;
using eqprop::PoolShape;
using eqprop::test::bits_of;
using eqprop::test::random_vector;

constexpr double kUnit = 1.0 / 16777216.0;  // 2^-24, float's unit roundoff

using Doubles = std::vector<double>;
using Floats = std::vector<float>;
using Indices = std::vector<std::int32_t>;

std::unique_ptr<Backend> cpu() { return eqprop::make_backend("cpu"); }

// ---------------------------------------------------------------------------------
// Tolerance bookkeeping: the worst fraction of its budget any element used, over a
// whole test case, reported once.

class ToleranceReport {
 public:
  explicit ToleranceReport(std::string what) : what_(std::move(what)) {}

  // |actual[i] - expected[i]| <= budget[i] for every i.
  void check(const std::string& where, const Floats& actual, const Doubles& expected, const Doubles& budget) {
    REQUIRE(actual.size() == expected.size());
    REQUIRE(budget.size() == expected.size());
    std::size_t failures = 0, first = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
      const double error = std::fabs(double(actual[i]) - expected[i]);
      const double used = error == 0.0 ? 0.0 : error / budget[i];
      if (!(used <= 1.0) && failures++ == 0) first = i;
      if (used > worst_) worst_ = used, worst_where_ = where;
    }
    ++checks_;
    CHECK_MESSAGE(failures == 0, what_ << ", " << where << ": " << failures << " of " << actual.size()
                                       << " elements out of tolerance; first at " << first << ": "
                                       << actual[first] << " vs " << expected[first] << " (budget "
                                       << budget[first] << ")");
  }
  void check_scalar(const std::string& where, double actual, double expected, double budget) {
    const double used = actual == expected ? 0.0 : std::fabs(actual - expected) / budget;
    if (used > worst_) worst_ = used, worst_where_ = where;
    ++checks_;
    CHECK_MESSAGE(used <= 1.0, what_ << ", " << where << ": " << actual << " vs " << expected << " (budget "
                                     << budget << ")");
  }
  ~ToleranceReport() {
    if (std::uncaught_exceptions() > 0) return;  // a REQUIRE failed: doctest reports that
    MESSAGE(what_ << ": " << checks_ << " checks; worst used " << 100.0 * worst_ << "% of its tolerance"
                  << (worst_where_.empty() ? "" : " (" + worst_where_ + ")"));
  }

 private:
  std::string what_;
  double worst_ = 0.0;
  std::string worst_where_;
  int checks_ = 0;
};

// The budget of sums of `terms` float products whose absolute sums are `magnitude`.
Doubles sum_budget(const Doubles& magnitude, double terms) {
  Doubles budget(magnitude.size());
  for (std::size_t i = 0; i < budget.size(); ++i)
    budget[i] = (terms + 2.0) * kUnit * magnitude[i] + std::numeric_limits<float>::denorm_min();
  return budget;
}

double dot(const Floats& a, const Floats& b) {
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += double(a[i]) * double(b[i]);
  return sum;
}

// ---------------------------------------------------------------------------------
// Naive references, NCHW, in double. `absolute` sums |terms| instead (the
// magnitude that sets a tolerance).

std::size_t at4(int b, int c, int h, int w, int channels, int height, int width) {
  return ((std::size_t(b) * channels + c) * height + h) * width + w;
}

// y[b, co, oh, ow] = bias[co] + sum_{c, kh, kw} w[co, c, kh, kw] x[b, c, ih, iw].
Doubles naive_conv(const ConvShape& s, const Floats& x, const Floats& w, const Floats* bias, bool absolute) {
  const int oh_n = s.out_h(), ow_n = s.out_w(), k = s.kernel;
  Doubles y(std::size_t(s.batch) * s.out_channels * oh_n * ow_n, 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int co = 0; co < s.out_channels; ++co)
      for (int oh = 0; oh < oh_n; ++oh)
        for (int ow = 0; ow < ow_n; ++ow) {
          double sum = bias ? (absolute ? std::fabs((*bias)[co]) : (*bias)[co]) : 0.0;
          for (int c = 0; c < s.in_channels; ++c)
            for (int kh = 0; kh < k; ++kh)
              for (int kw = 0; kw < k; ++kw) {
                const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
                if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                const double term = double(w[at4(co, c, kh, kw, s.in_channels, k, k)]) *
                                    double(x[at4(b, c, ih, iw, s.in_channels, s.in_h, s.in_w)]);
                sum += absolute ? std::fabs(term) : term;
              }
          y[at4(b, co, oh, ow, s.out_channels, oh_n, ow_n)] = sum;
        }
  return y;
}

// The transposed convolution as the scatter loop it is by definition:
// x[b, c, ih, iw] += w[co, c, kh, kw] y[b, co, oh, ow] for every tap.
Doubles naive_conv_transpose(const ConvShape& s, const Floats& y, const Floats& w, bool absolute) {
  const int oh_n = s.out_h(), ow_n = s.out_w(), k = s.kernel;
  Doubles x(std::size_t(s.batch) * s.in_channels * s.in_h * s.in_w, 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int co = 0; co < s.out_channels; ++co)
      for (int oh = 0; oh < oh_n; ++oh)
        for (int ow = 0; ow < ow_n; ++ow)
          for (int c = 0; c < s.in_channels; ++c)
            for (int kh = 0; kh < k; ++kh)
              for (int kw = 0; kw < k; ++kw) {
                const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
                if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                const double term = double(w[at4(co, c, kh, kw, s.in_channels, k, k)]) *
                                    double(y[at4(b, co, oh, ow, s.out_channels, oh_n, ow_n)]);
                x[at4(b, c, ih, iw, s.in_channels, s.in_h, s.in_w)] += absolute ? std::fabs(term) : term;
              }
  return x;
}

// g[co, c, kh, kw] = sum_{b, oh, ow} y[b, co, oh, ow] x[b, c, ih, iw]: the correlation.
Doubles naive_weight_gradient(const ConvShape& s, const Floats& x, const Floats& y, bool absolute) {
  const int oh_n = s.out_h(), ow_n = s.out_w(), k = s.kernel;
  Doubles g(std::size_t(s.out_channels) * s.in_channels * k * k, 0.0);
  for (int co = 0; co < s.out_channels; ++co)
    for (int c = 0; c < s.in_channels; ++c)
      for (int kh = 0; kh < k; ++kh)
        for (int kw = 0; kw < k; ++kw) {
          double sum = 0.0;
          for (int b = 0; b < s.batch; ++b)
            for (int oh = 0; oh < oh_n; ++oh)
              for (int ow = 0; ow < ow_n; ++ow) {
                const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
                if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                const double term = double(y[at4(b, co, oh, ow, s.out_channels, oh_n, ow_n)]) *
                                    double(x[at4(b, c, ih, iw, s.in_channels, s.in_h, s.in_w)]);
                sum += absolute ? std::fabs(term) : term;
              }
          g[at4(co, c, kh, kw, s.in_channels, k, k)] = sum;
        }
  return g;
}

// Max pooling: the first maximum in (kh, kw) order, and its index ih * in_w + iw.
void naive_max_pool(const PoolShape& s, const Floats& x, Doubles& y, Indices& argmax) {
  const int oh_n = s.out_h(), ow_n = s.out_w();
  y.assign(std::size_t(s.batch) * s.channels * oh_n * ow_n, 0.0);
  argmax.assign(y.size(), -1);
  for (int b = 0; b < s.batch; ++b)
    for (int c = 0; c < s.channels; ++c)
      for (int oh = 0; oh < oh_n; ++oh)
        for (int ow = 0; ow < ow_n; ++ow) {
          const std::size_t o = at4(b, c, oh, ow, s.channels, oh_n, ow_n);
          for (int kh = 0; kh < s.kernel; ++kh)
            for (int kw = 0; kw < s.kernel; ++kw) {
              const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
              if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
              const double v = x[at4(b, c, ih, iw, s.channels, s.in_h, s.in_w)];
              if (argmax[o] < 0 || v > y[o]) y[o] = v, argmax[o] = ih * s.in_w + iw;
            }
        }
}

// Max unpooling as the scatter it is by definition: x[argmax[o]] += y[o].
Doubles naive_max_unpool(const PoolShape& s, const Floats& y, const Indices& argmax, bool absolute) {
  const int oh_n = s.out_h(), ow_n = s.out_w();
  Doubles x(std::size_t(s.batch) * s.channels * s.in_h * s.in_w, 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int c = 0; c < s.channels; ++c)
      for (int o = 0; o < oh_n * ow_n; ++o) {
        const std::size_t index = (std::size_t(b) * s.channels + c) * oh_n * ow_n + o;
        const double v = y[index];
        x[(std::size_t(b) * s.channels + c) * s.in_h * s.in_w + argmax[index]] += absolute ? std::fabs(v) : v;
      }
  return x;
}

// Average pooling (padding counted) and its adjoint, the scatter of y / K^2.
Doubles naive_avg_pool(const PoolShape& s, const Floats& x, bool absolute) {
  const int oh_n = s.out_h(), ow_n = s.out_w();
  Doubles y(std::size_t(s.batch) * s.channels * oh_n * ow_n, 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int c = 0; c < s.channels; ++c)
      for (int oh = 0; oh < oh_n; ++oh)
        for (int ow = 0; ow < ow_n; ++ow) {
          double sum = 0.0;
          for (int kh = 0; kh < s.kernel; ++kh)
            for (int kw = 0; kw < s.kernel; ++kw) {
              const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
              if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
              const double v = x[at4(b, c, ih, iw, s.channels, s.in_h, s.in_w)];
              sum += absolute ? std::fabs(v) : v;
            }
          y[at4(b, c, oh, ow, s.channels, oh_n, ow_n)] = sum / (s.kernel * s.kernel);
        }
  return y;
}

Doubles naive_avg_unpool(const PoolShape& s, const Floats& y, bool absolute) {
  const int oh_n = s.out_h(), ow_n = s.out_w();
  Doubles x(std::size_t(s.batch) * s.channels * s.in_h * s.in_w, 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int c = 0; c < s.channels; ++c)
      for (int oh = 0; oh < oh_n; ++oh)
        for (int ow = 0; ow < ow_n; ++ow)
          for (int kh = 0; kh < s.kernel; ++kh)
            for (int kw = 0; kw < s.kernel; ++kw) {
              const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
              if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
              const double v = y[at4(b, c, oh, ow, s.channels, oh_n, ow_n)] / (s.kernel * s.kernel);
              x[at4(b, c, ih, iw, s.channels, s.in_h, s.in_w)] += absolute ? std::fabs(v) : v;
            }
  return x;
}

// ---------------------------------------------------------------------------------
// Host-side layout helpers: an NCHW host array placed into / read out of a
// `layout` tensor of `size` floats (the rest left at `fill`).

template <class T>
std::vector<T> place(const std::vector<T>& nchw, int batch, int channels, std::size_t plane, const PlaneLayout& layout,
                     std::size_t size, T fill) {
  std::vector<T> out(size, fill);
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < channels; ++c)
      for (std::size_t p = 0; p < plane; ++p)
        out[layout.at(b, c, std::int64_t(p), std::int64_t(plane))] = nchw[(std::size_t(b) * channels + c) * plane + p];
  return out;
}

template <class T>
std::vector<T> gather_nchw(const std::vector<T>& tensor, int batch, int channels, std::size_t plane,
                           const PlaneLayout& layout) {
  std::vector<T> out(std::size_t(batch) * channels * plane);
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < channels; ++c)
      for (std::size_t p = 0; p < plane; ++p)
        out[(std::size_t(b) * channels + c) * plane + p] = tensor[layout.at(b, c, std::int64_t(p), std::int64_t(plane))];
  return out;
}

// The three layouts of kernels/plane_layout.h, for a tensor of `total` samples.
enum class Order { nchw, cnhw, nhwc };
PlaneLayout layout_of(Order order, int total, int channels) {
  switch (order) {
    case Order::cnhw: return eqprop::cnhw_layout(total);
    case Order::nhwc: return eqprop::nhwc_layout(channels);
    case Order::nchw: break;
  }
  return eqprop::nchw_layout(channels);
}

DeviceBuffer<float> upload(Backend& backend, const Floats& host) {
  DeviceBuffer<float> buffer(backend, host.size());
  buffer.copy_from_host(host);
  return buffer;
}

// ---------------------------------------------------------------------------------
// The shapes.

std::string describe(const ConvShape& s) {
  std::ostringstream out;
  out << "batch " << s.batch << ", " << s.in_channels << "->" << s.out_channels << " channels, " << s.in_h << "x"
      << s.in_w << ", kernel " << s.kernel << ", stride " << s.stride << ", padding " << s.padding;
  return out.str();
}

std::string describe(const PoolShape& s) {
  std::ostringstream out;
  out << "batch " << s.batch << ", " << s.channels << " channels, " << s.in_h << "x" << s.in_w << ", kernel "
      << s.kernel << ", stride " << s.stride << ", padding " << s.padding;
  return out.str();
}

std::vector<ConvShape> conv_cases() {
  std::mt19937 rng(20240611);
  std::vector<ConvShape> cases;
  const int channel_pairs[][2] = {{1, 1}, {1, 3}, {3, 8}, {5, 2}};
  for (const auto& channels : channel_pairs)
    for (int stride : {1, 2})
      for (int padding : {0, 1})
        for (int batch : {1, 3})
          for (int kernel : {1, 2, 3, 5}) {
            const int smallest = std::max(1, kernel - 2 * padding);
            std::uniform_int_distribution<int> size(smallest, std::max(smallest, 9));
            ConvShape s{batch, channels[0], size(rng), size(rng), channels[1], kernel, stride, padding};
            cases.push_back(s);
          }
  return cases;
}

std::vector<PoolShape> pool_cases() {
  std::mt19937 rng(7);
  const int windows[][3] = {{2, 2, 0}, {3, 2, 1}, {2, 1, 0}, {3, 1, 1}, {3, 3, 0}, {1, 1, 0}};  // kernel, stride, pad
  std::vector<PoolShape> cases;
  for (const auto& window : windows)
    for (int channels : {1, 4})
      for (int batch : {1, 3}) {
        std::uniform_int_distribution<int> size(window[0], 9);
        cases.push_back(PoolShape{batch, channels, size(rng), size(rng), window[0], window[1], window[2]});
      }
  return cases;
}

// The data of one convolution case.
struct ConvData {
  Floats x, w, bias, y;  // x (N, C, H, W), w (Co, C, K, K), bias (Co), y (N, Co, OH, OW)
  ConvData(const ConvShape& s, std::mt19937& rng)
      : x(random_vector(rng, s.input_size(), -1.0f, 1.0f)),
        w(random_vector(rng, s.weight_size(), -1.0f, 1.0f)),
        bias(random_vector(rng, s.out_channels, -1.0f, 1.0f)),
        y(random_vector(rng, s.output_size(), -1.0f, 1.0f)) {}
};

}  // namespace

// ---------------------------------------------------------------------------------
// Convolution

TEST_CASE("conv: forward convolution equals the naive loop (bias, accumulate, every shape)") {
  auto backend = cpu();
  std::mt19937 rng(1);
  ToleranceReport report("conv forward");
  for (const ConvShape& s : conv_cases()) {
    REQUIRE_NOTHROW(s.validate());
    const ConvData data(s, rng);
    ConvScratch scratch(*backend, s);
    auto x = upload(*backend, data.x), w = upload(*backend, data.w), bias = upload(*backend, data.bias);
    DeviceBuffer<float> y(*backend, s.output_size());
    eqprop::conv2d_forward(*backend, s, x.data(), w.data(), bias.data(), y.data(), scratch.workspace());
    const double terms = double(s.patch_size()) + 1;
    report.check(describe(s) + ", bias", y.to_host(), naive_conv(s, data.x, data.w, &data.bias, false),
                 sum_budget(naive_conv(s, data.x, data.w, &data.bias, true), terms));

    // Without a bias, accumulating onto y0: y = y0 + conv(x).
    auto accumulated = upload(*backend, data.y);
    eqprop::conv2d_forward(*backend, s, x.data(), w.data(), nullptr, accumulated.data(), scratch.workspace(), true);
    Doubles expected = naive_conv(s, data.x, data.w, nullptr, false), magnitude = naive_conv(s, data.x, data.w, nullptr, true);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += data.y[i], magnitude[i] += std::fabs(data.y[i]);
    report.check(describe(s) + ", accumulate", accumulated.to_host(), expected, sum_budget(magnitude, terms));
  }
}

TEST_CASE("conv: the transposed convolution equals the naive scatter loop and is the exact adjoint") {
  auto backend = cpu();
  std::mt19937 rng(2);
  ToleranceReport loops("conv transpose vs naive"), adjoint("conv <conv(x), y> = <x, conv_T(y)>");
  for (const ConvShape& s : conv_cases()) {
    const ConvData data(s, rng);
    ConvScratch scratch(*backend, s);
    auto x = upload(*backend, data.x), w = upload(*backend, data.w), y = upload(*backend, data.y);
    DeviceBuffer<float> conv_x(*backend, s.output_size()), conv_t_y(*backend, s.input_size());
    eqprop::conv2d_forward(*backend, s, x.data(), w.data(), nullptr, conv_x.data(), scratch.workspace());
    eqprop::conv2d_transpose(*backend, s, y.data(), w.data(), conv_t_y.data(), scratch.workspace());
    const Floats transposed = conv_t_y.to_host();
    const double terms = double(s.out_channels) * s.kernel * s.kernel;
    loops.check(describe(s), transposed, naive_conv_transpose(s, data.y, data.w, false),
                sum_budget(naive_conv_transpose(s, data.y, data.w, true), terms));

    // <conv(x), y> and <x, conv_T(y)> from the engine's float results; both err by
    // at most (their sum lengths) u times the triple sum sum |y| |w| |x|.
    const Doubles abs_conv = naive_conv(s, data.x, data.w, nullptr, true);
    double triple = 0.0;
    for (std::size_t i = 0; i < abs_conv.size(); ++i) triple += std::fabs(data.y[i]) * abs_conv[i];
    adjoint.check_scalar(describe(s), dot(conv_x.to_host(), data.y), dot(data.x, transposed),
                         (double(s.patch_size()) + terms + 4) * kUnit * triple);

    // Accumulating: x0 + conv_T(y).
    const Floats x0 = random_vector(rng, s.input_size(), -1.0f, 1.0f);
    auto accumulated = upload(*backend, x0);
    eqprop::conv2d_transpose(*backend, s, y.data(), w.data(), accumulated.data(), scratch.workspace(), true);
    Doubles expected = naive_conv_transpose(s, data.y, data.w, false);
    Doubles magnitude = naive_conv_transpose(s, data.y, data.w, true);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += x0[i], magnitude[i] += std::fabs(x0[i]);
    loops.check(describe(s) + ", accumulate", accumulated.to_host(), expected, sum_budget(magnitude, terms + 1));
  }
}

TEST_CASE("conv: the kernel update equals the naive correlation summed over the batch") {
  auto backend = cpu();
  std::mt19937 rng(3);
  ToleranceReport report("conv kernel update");
  for (const ConvShape& s : conv_cases()) {
    const ConvData data(s, rng);
    ConvScratch scratch(*backend, s);
    auto x = upload(*backend, data.x), y = upload(*backend, data.y);
    const double terms = double(s.positions());
    // beta = 0 must ignore whatever the gradient held (NaN here).
    DeviceBuffer<float> gradient = upload(*backend, Floats(s.weight_size(), std::nanf("")));
    eqprop::conv2d_weight_gradient(*backend, s, x.data(), y.data(), 1.0f, 0.0f, gradient.data(), scratch.workspace());
    report.check(describe(s), gradient.to_host(), naive_weight_gradient(s, data.x, data.y, false),
                 sum_budget(naive_weight_gradient(s, data.x, data.y, true), terms));

    // alpha and beta: g = -0.5 corr + 2 g0 (the EP update accumulates two phases).
    const Floats g0 = random_vector(rng, s.weight_size(), -1.0f, 1.0f);
    gradient.copy_from_host(g0);
    eqprop::conv2d_weight_gradient(*backend, s, x.data(), y.data(), -0.5f, 2.0f, gradient.data(), scratch.workspace());
    Doubles expected = naive_weight_gradient(s, data.x, data.y, false);
    Doubles magnitude = naive_weight_gradient(s, data.x, data.y, true);
    for (std::size_t i = 0; i < expected.size(); ++i) {
      expected[i] = -0.5 * expected[i] + 2.0 * g0[i];
      magnitude[i] = 0.5 * magnitude[i] + 2.0 * std::fabs(g0[i]);
    }
    report.check(describe(s) + ", alpha -0.5, beta 2", gradient.to_host(), expected, sum_budget(magnitude, terms + 2));
  }
}

TEST_CASE("conv: the three products of a layer are one GEMM each, with the documented shapes and FLOPs") {
  // The 4-conv CIFAR-10 model's second layer (Laborieux et al. 2021), batch 128.
  const ConvShape s{128, 128, 16, 16, 256, 3, 1, 1};
  CHECK(s.out_h() == 16);
  CHECK(s.out_w() == 16);
  CHECK(s.patch_size() == 128 * 9);
  CHECK(s.positions() == 128 * 16 * 16);
  CHECK(s.columns_size() == std::int64_t(128) * 9 * 128 * 256);
  CHECK(s.gemm_flops() == doctest::Approx(2.0 * 256 * 1152 * 32768));
  CHECK_FALSE(s.output_is_gemm_shaped());  // NCHW, batch > 1: one reordering pass
  ConvShape channel_major = s;
  channel_major.output_layout = eqprop::cnhw_layout(128);
  CHECK(channel_major.output_is_gemm_shaped());
  CHECK(channel_major.channel_major_size() == 0);
  CHECK(channel_major.output_row_stride() == 128 * 16 * 16);
}

TEST_CASE("conv: channel-major and channels-last tensors, batch slices and mixed layouts give the NCHW results") {
  auto backend = cpu();
  std::mt19937 rng(4);
  ToleranceReport report("conv layouts");
  // A whole batch of 5; the call works on samples [1, 4) of it.
  const int whole = 5, begin = 1;
  for (const ConvShape& base : {ConvShape{3, 3, 7, 6, 8, 3, 1, 1}, ConvShape{3, 5, 9, 8, 2, 3, 2, 0},
                                ConvShape{3, 1, 5, 5, 3, 2, 2, 1}}) {
    const ConvData data(base, rng);
    const std::size_t in_plane = std::size_t(base.in_h) * base.in_w, out_plane = std::size_t(base.out_h()) * base.out_w();
    const Doubles forward = naive_conv(base, data.x, data.w, &data.bias, false);
    const Doubles forward_budget = sum_budget(naive_conv(base, data.x, data.w, &data.bias, true), base.patch_size() + 1.0);
    const Doubles transposed = naive_conv_transpose(base, data.y, data.w, false);
    const Doubles transposed_budget =
        sum_budget(naive_conv_transpose(base, data.y, data.w, true), double(base.out_channels) * base.kernel * base.kernel);
    const Doubles gradient = naive_weight_gradient(base, data.x, data.y, false);
    const Doubles gradient_budget = sum_budget(naive_weight_gradient(base, data.x, data.y, true), double(base.positions()));

    struct Variant {
      const char* name;
      Order input, output;
      bool slice;
    };
    for (const Variant& v : {Variant{"CNHW -> CNHW", Order::cnhw, Order::cnhw, false},
                             Variant{"NCHW -> CNHW", Order::nchw, Order::cnhw, false},
                             Variant{"CNHW -> NCHW", Order::cnhw, Order::nchw, false},
                             Variant{"NCHW -> NHWC", Order::nchw, Order::nhwc, false},
                             Variant{"NHWC -> NHWC", Order::nhwc, Order::nhwc, false},
                             Variant{"slice of CNHW -> CNHW", Order::cnhw, Order::cnhw, true},
                             Variant{"slice of NCHW -> NCHW", Order::nchw, Order::nchw, true},
                             Variant{"slice of NCHW -> CNHW", Order::nchw, Order::cnhw, true},
                             Variant{"slice of NHWC -> NHWC", Order::nhwc, Order::nhwc, true}}) {
      // The tensors hold `total` samples; this call's are [offset, offset + 3).
      const int total = v.slice ? whole : base.batch, offset = v.slice ? begin : 0;
      const PlaneLayout in_layout = layout_of(v.input, total, base.in_channels);
      const PlaneLayout out_layout = layout_of(v.output, total, base.out_channels);
      ConvShape s = base;
      s.input_layout = in_layout;
      s.output_layout = out_layout;
      REQUIRE_NOTHROW(s.validate());
      const std::size_t in_size = std::size_t(total) * base.in_channels * in_plane;
      const std::size_t out_size = std::size_t(total) * base.out_channels * out_plane;
      // Samples [offset, offset + 3) of the whole tensors hold the case's data; the
      // others a sentinel that must survive.
      const float sentinel = 12345.0f;
      auto placed = [&](const Floats& nchw, int channels, std::size_t plane, const PlaneLayout& layout, std::size_t size) {
        Floats whole_nchw(std::size_t(total) * channels * plane, sentinel);
        std::copy(nchw.begin(), nchw.end(), whole_nchw.begin() + std::size_t(offset) * channels * plane);
        return place(whole_nchw, total, channels, plane, layout, size, sentinel);
      };
      const std::size_t in_shift = std::size_t(offset) * in_layout.sample_stride * in_plane;
      const std::size_t out_shift = std::size_t(offset) * out_layout.sample_stride * out_plane;
      auto read_back = [&](const Floats& tensor, int channels, std::size_t plane, const PlaneLayout& layout) {
        const Floats whole_nchw = gather_nchw(tensor, total, channels, plane, layout);
        for (std::size_t i = 0; i < whole_nchw.size(); ++i) {
          const bool inside = i / (channels * plane) >= std::size_t(offset) &&
                              i / (channels * plane) < std::size_t(offset + base.batch);
          if (!inside && bits_of(whole_nchw[i]) != bits_of(sentinel)) {
            FAIL_CHECK(v.name << ": element " << i << " outside the slice was written");
            break;
          }
        }
        return Floats(whole_nchw.begin() + std::size_t(offset) * channels * plane,
                      whole_nchw.begin() + std::size_t(offset + base.batch) * channels * plane);
      };

      ConvScratch scratch(*backend, s);
      auto x = upload(*backend, placed(data.x, base.in_channels, in_plane, in_layout, in_size));
      auto y_in = upload(*backend, placed(data.y, base.out_channels, out_plane, out_layout, out_size));
      auto w = upload(*backend, data.w), bias = upload(*backend, data.bias);
      auto y_out = upload(*backend, Floats(out_size, sentinel));
      auto x_out = upload(*backend, Floats(in_size, sentinel));
      DeviceBuffer<float> g(*backend, base.weight_size());

      eqprop::conv2d_forward(*backend, s, x.data() + in_shift, w.data(), bias.data(), y_out.data() + out_shift,
                             scratch.workspace());
      eqprop::conv2d_transpose(*backend, s, y_in.data() + out_shift, w.data(), x_out.data() + in_shift,
                               scratch.workspace());
      eqprop::conv2d_weight_gradient(*backend, s, x.data() + in_shift, y_in.data() + out_shift, 1.0f, 0.0f, g.data(),
                                     scratch.workspace());
      const std::string where = describe(base) + ", " + v.name;
      report.check(where + ", forward", read_back(y_out.to_host(), base.out_channels, out_plane, out_layout), forward,
                   forward_budget);
      report.check(where + ", transpose", read_back(x_out.to_host(), base.in_channels, in_plane, in_layout), transposed,
                   transposed_budget);
      report.check(where + ", kernel update", g.to_host(), gradient, gradient_budget);
    }
  }
}

TEST_CASE("conv: a cached column matrix gives the same results as the x-taking calls, bit for bit") {
  auto backend = cpu();
  std::mt19937 rng(5);
  const ConvShape s{3, 3, 8, 7, 4, 3, 1, 1};
  const ConvData data(s, rng);
  ConvScratch scratch(*backend, s);
  auto x = upload(*backend, data.x), w = upload(*backend, data.w), y = upload(*backend, data.y),
       bias = upload(*backend, data.bias);
  DeviceBuffer<float> columns(*backend, s.columns_size()), y_direct(*backend, s.output_size()),
      y_cached(*backend, s.output_size()), g_direct(*backend, s.weight_size()), g_cached(*backend, s.weight_size());
  eqprop::conv2d_im2col(*backend, s, x.data(), columns.data());
  eqprop::conv2d_forward(*backend, s, x.data(), w.data(), bias.data(), y_direct.data(), scratch.workspace());
  eqprop::conv2d_forward_columns(*backend, s, columns.data(), w.data(), bias.data(), y_cached.data(),
                                 scratch.workspace());
  eqprop::conv2d_weight_gradient(*backend, s, x.data(), y.data(), 0.25f, 0.0f, g_direct.data(), scratch.workspace());
  eqprop::conv2d_weight_gradient_columns(*backend, s, columns.data(), y.data(), 0.25f, 0.0f, g_cached.data(),
                                         scratch.workspace());
  eqprop::test::check_bit_exact("forward from cached columns", y_cached.to_host(), y_direct.to_host());
  eqprop::test::check_bit_exact("kernel update from cached columns", g_cached.to_host(), g_direct.to_host());
}

TEST_CASE("conv: im2col lays out x as the documented (C*K*K, N*OH*OW) matrix, zeros in the padding") {
  auto backend = cpu();
  std::mt19937 rng(6);
  const ConvShape s{2, 3, 5, 4, 1, 3, 2, 1};
  const Floats x = random_vector(rng, s.input_size(), 0.5f, 1.0f);  // nonzero: a 0 is padding
  DeviceBuffer<float> columns(*backend, s.columns_size());
  auto device_x = upload(*backend, x);
  eqprop::conv2d_im2col(*backend, s, device_x.data(), columns.data());
  const Floats host = columns.to_host();
  std::size_t mismatches = 0, zeros = 0;
  for (int c = 0; c < s.in_channels; ++c)
    for (int kh = 0; kh < s.kernel; ++kh)
      for (int kw = 0; kw < s.kernel; ++kw)
        for (int b = 0; b < s.batch; ++b)
          for (int oh = 0; oh < s.out_h(); ++oh)
            for (int ow = 0; ow < s.out_w(); ++ow) {
              const std::size_t row = (std::size_t(c) * s.kernel + kh) * s.kernel + kw;
              const std::size_t column = (std::size_t(b) * s.out_h() + oh) * s.out_w() + ow;
              const int ih = oh * s.stride - s.padding + kh, iw = ow * s.stride - s.padding + kw;
              const bool inside = ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w;
              const float expected = inside ? x[at4(b, c, ih, iw, s.in_channels, s.in_h, s.in_w)] : 0.0f;
              zeros += !inside;
              mismatches += bits_of(host[row * s.positions() + column]) != bits_of(expected);
            }
  CHECK(zeros > 0);
  CHECK(mismatches == 0);
}

TEST_CASE("conv: shapes that cannot work are refused with the field named") {
  using eqprop::test::check_contains;
  using eqprop::test::thrown_message;
  check_contains(thrown_message<std::invalid_argument>([] { ConvShape{1, 1, 2, 2, 1, 5, 1, 1}.validate(); }),
                 {"kernel 5", "padded input 4x4"});
  check_contains(thrown_message<std::invalid_argument>([] { ConvShape{1, 1, 4, 4, 1, 3, 0, 0}.validate(); }),
                 {"stride 0"});
  check_contains(thrown_message<std::invalid_argument>([] { ConvShape{0, 1, 4, 4, 1, 3, 1, 0}.validate(); }),
                 {"batch 0"});
  check_contains(thrown_message<std::invalid_argument>([] { ConvShape{1, 1, 4, 4, 1, 3, 1, -1}.validate(); }),
                 {"padding -1"});
  ConvShape overlapping{4, 3, 4, 4, 2, 3, 1, 1};
  overlapping.output_layout = eqprop::cnhw_layout(2);  // 2 < batch 4: channels overlap
  check_contains(thrown_message<std::invalid_argument>([&] { overlapping.validate(); }), {"output_layout", "overlap"});
  ConvShape interleaved{4, 3, 4, 4, 2, 3, 1, 1};
  interleaved.input_layout = eqprop::nhwc_layout(2);  // channels-last of 2 channels, for an input of 3
  check_contains(thrown_message<std::invalid_argument>([&] { interleaved.validate(); }),
                 {"input_layout", "position_stride 2"});
  interleaved.input_layout = eqprop::nhwc_layout(3);
  interleaved.input_layout.sample_stride = 2;  // samples 2 planes apart: they overlap
  check_contains(thrown_message<std::invalid_argument>([&] { interleaved.validate(); }), {"input_layout", "overlap"});
  interleaved.input_layout = eqprop::nhwc_layout(3);
  CHECK_NOTHROW(interleaved.validate());
  check_contains(thrown_message<std::invalid_argument>([] { PoolShape{1, 1, 4, 4, 2, 2, 2}.validate(); }),
                 {"padding 2", "kernel / 2"});
  // The convolution needs its channel-major workspace for an NCHW y with batch > 1.
  auto backend = cpu();
  const ConvShape s{2, 1, 4, 4, 2, 3, 1, 1};
  DeviceBuffer<float> x(*backend, s.input_size()), w(*backend, s.weight_size()), y(*backend, s.output_size()),
      columns(*backend, s.columns_size());
  check_contains(thrown_message<std::invalid_argument>([&] {
                   eqprop::conv2d_forward(*backend, s, x.data(), w.data(), nullptr, y.data(),
                                          eqprop::ConvWorkspace{columns.data(), nullptr});
                 }),
                 {"channel_major"});
}

// ---------------------------------------------------------------------------------
// Pooling

TEST_CASE("pool: max pooling and its argmax equal the naive loop, ties go to the first index") {
  auto backend = cpu();
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> level(0, 3);
  int ties = 0;
  for (const PoolShape& s : pool_cases()) {
    // Four levels only: windows with ties everywhere.
    Floats x(s.input_size());
    for (float& v : x) v = 0.25f * level(rng) - 0.5f;
    auto device_x = upload(*backend, x);
    DeviceBuffer<float> y(*backend, s.output_size());
    DeviceBuffer<std::int32_t> argmax(*backend, s.output_size());
    eqprop::max_pool2d(*backend, s, device_x.data(), y.data(), argmax.data());
    Doubles expected;
    Indices expected_argmax;
    naive_max_pool(s, x, expected, expected_argmax);
    const Floats pooled = y.to_host();
    const Indices indices = argmax.to_host();
    std::size_t value_errors = 0, index_errors = 0;
    for (std::size_t i = 0; i < pooled.size(); ++i) {
      value_errors += double(pooled[i]) != expected[i];
      index_errors += indices[i] != expected_argmax[i];
      ties += s.kernel > 1;
    }
    CHECK_MESSAGE(value_errors == 0, describe(s) << ": " << value_errors << " pooled values differ");
    CHECK_MESSAGE(index_errors == 0, describe(s) << ": " << index_errors << " argmax indices differ");
  }
  MESSAGE("max pooling: " << ties << " windows of 4-level data checked (ties in most)");
}

TEST_CASE("pool: max pooling propagates NaN (first NaN wins) and handles -inf") {
  auto backend = cpu();
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  const PoolShape s{1, 1, 2, 6, 2, 2, 0};
  // Windows: {1, nan, 2, 3}, {-inf, -inf, -inf, -inf}, {nan, 5, nan, 7}
  const Floats x = {1.0f, nan, -inf, -inf, nan, 5.0f,  //
                    2.0f, 3.0f, -inf, -inf, nan, 7.0f};
  auto device_x = upload(*backend, x);
  DeviceBuffer<float> y(*backend, 3);
  DeviceBuffer<std::int32_t> argmax(*backend, 3);
  eqprop::max_pool2d(*backend, s, device_x.data(), y.data(), argmax.data());
  const Floats pooled = y.to_host();
  const Indices indices = argmax.to_host();
  CHECK(std::isnan(pooled[0]));
  CHECK(indices[0] == 1);
  CHECK(pooled[1] == -inf);
  CHECK(indices[1] == 2);
  CHECK(std::isnan(pooled[2]));
  CHECK(indices[2] == 4);
}

TEST_CASE("pool: max unpooling equals the naive scatter and is the adjoint of pooling at fixed argmax") {
  auto backend = cpu();
  std::mt19937 rng(12);
  ToleranceReport loops("max unpool vs naive"), adjoint("<pool(x), y> = <x, unpool(y)>");
  for (const PoolShape& s : pool_cases()) {
    const Floats x = random_vector(rng, s.input_size(), -1.0f, 1.0f);
    const Floats y = random_vector(rng, s.output_size(), -1.0f, 1.0f);
    auto device_x = upload(*backend, x), device_y = upload(*backend, y);
    DeviceBuffer<float> pooled(*backend, s.output_size()), unpooled(*backend, s.input_size());
    DeviceBuffer<std::int32_t> argmax(*backend, s.output_size());
    eqprop::max_pool2d(*backend, s, device_x.data(), pooled.data(), argmax.data());
    eqprop::max_unpool2d(*backend, s, device_y.data(), argmax.data(), unpooled.data());
    const Indices indices = argmax.to_host();
    const Floats result = unpooled.to_host();
    // At most ceil(K/S)^2 windows cover an element; non-overlapping windows: exact.
    const double covering = std::pow(std::ceil(double(s.kernel) / s.stride), 2);
    const Doubles magnitude = naive_max_unpool(s, y, indices, true);
    Doubles budget = sum_budget(magnitude, covering);
    if (s.stride >= s.kernel) std::fill(budget.begin(), budget.end(), std::numeric_limits<float>::denorm_min());
    loops.check(describe(s), result, naive_max_unpool(s, y, indices, false), budget);

    double triple = 0.0;
    for (std::size_t i = 0; i < magnitude.size(); ++i) triple += std::fabs(x[i]) * magnitude[i];
    adjoint.check_scalar(describe(s), dot(pooled.to_host(), y), dot(x, result), (covering + 2) * kUnit * triple);

    // Accumulating onto x0.
    const Floats x0 = random_vector(rng, s.input_size(), -1.0f, 1.0f);
    auto accumulated = upload(*backend, x0);
    eqprop::max_unpool2d(*backend, s, device_y.data(), argmax.data(), accumulated.data(), true);
    Doubles expected = naive_max_unpool(s, y, indices, false), total = magnitude;
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += x0[i], total[i] += std::fabs(x0[i]);
    loops.check(describe(s) + ", accumulate", accumulated.to_host(), expected, sum_budget(total, covering + 1));
  }
}

TEST_CASE("pool: average pooling and its adjoint equal the naive loops, the adjoint identity holds") {
  auto backend = cpu();
  std::mt19937 rng(13);
  ToleranceReport loops("avg pool/unpool vs naive"), adjoint("<avg(x), y> = <x, avg_T(y)>");
  for (const PoolShape& s : pool_cases()) {
    const Floats x = random_vector(rng, s.input_size(), -1.0f, 1.0f);
    const Floats y = random_vector(rng, s.output_size(), -1.0f, 1.0f);
    auto device_x = upload(*backend, x), device_y = upload(*backend, y);
    DeviceBuffer<float> pooled(*backend, s.output_size()), unpooled(*backend, s.input_size());
    eqprop::avg_pool2d(*backend, s, device_x.data(), pooled.data());
    eqprop::avg_unpool2d(*backend, s, device_y.data(), unpooled.data());
    const double window = double(s.kernel) * s.kernel;
    const double covering = std::pow(std::ceil(double(s.kernel) / s.stride), 2);
    const Floats pooled_host = pooled.to_host(), unpooled_host = unpooled.to_host();
    loops.check(describe(s) + ", pool", pooled_host, naive_avg_pool(s, x, false),
                sum_budget(naive_avg_pool(s, x, true), window + 1));
    const Doubles unpool_magnitude = naive_avg_unpool(s, y, true);
    loops.check(describe(s) + ", unpool", unpooled_host, naive_avg_unpool(s, y, false),
                sum_budget(unpool_magnitude, covering + 1));
    double triple = 0.0;
    for (std::size_t i = 0; i < unpool_magnitude.size(); ++i) triple += std::fabs(x[i]) * unpool_magnitude[i];
    adjoint.check_scalar(describe(s), dot(pooled_host, y), dot(x, unpooled_host),
                         (window + covering + 4) * kUnit * triple);

    const Floats x0 = random_vector(rng, s.input_size(), -1.0f, 1.0f);
    auto accumulated = upload(*backend, x0);
    eqprop::avg_unpool2d(*backend, s, device_y.data(), accumulated.data(), true);
    Doubles expected = naive_avg_unpool(s, y, false), total = unpool_magnitude;
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += x0[i], total[i] += std::fabs(x0[i]);
    loops.check(describe(s) + ", unpool accumulate", accumulated.to_host(), expected, sum_budget(total, covering + 2));
  }
}

TEST_CASE("transpose_tile: a 16x16 tile of floats and of int32 at any strides is the element-wise transpose") {
  std::mt19937 rng(31);
  for (const std::int64_t in_stride : {16, 21}) {
    for (const std::int64_t out_stride : {16, 40}) {
      Floats in(std::size_t(16 * in_stride));
      for (float& v : in) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
      in[3] = -0.0f;  // bits, not values, are copied
      in[5] = std::numeric_limits<float>::quiet_NaN();
      Floats out(std::size_t(16 * out_stride), 7.0f);
      eqprop::transpose_tile(in.data(), in_stride, out.data(), out_stride);
      std::vector<std::int32_t> indices(in.size()), transposed(out.size(), -7);
      std::iota(indices.begin(), indices.end(), 0);
      eqprop::transpose_tile(indices.data(), in_stride, transposed.data(), out_stride);
      int wrong = 0;
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) {
          wrong += bits_of(out[j * out_stride + i]) != bits_of(in[i * in_stride + j]);
          wrong += transposed[j * out_stride + i] != indices[i * in_stride + j];
        }
      for (std::int64_t j = 0; j < 16; ++j)  // what lies between the rows stays
        for (std::int64_t k = 16; k < out_stride; ++k) wrong += out[j * out_stride + k] != 7.0f;
      CHECK_MESSAGE(wrong == 0, "strides " << in_stride << " -> " << out_stride);
    }
  }
}

TEST_CASE("pool: channel-major and channels-last tensors and batch slices pool to the NCHW results, bit for bit") {
  auto backend = cpu();
  std::mt19937 rng(14);
  std::uniform_int_distribution<int> level(0, 3);
  // Windows that do not tile the plane (7x9), and 2x2 tilings onto pooled planes
  // wider than a position tile (9x10 = 90 > 64) with channel counts that leave a
  // partial channel block (20 = 16 + 4), as the channels-last row paths take them
  // (kernels/max_pool.h).
  for (const PoolShape& base : {PoolShape{3, 4, 7, 9, 2, 2, 0}, PoolShape{3, 20, 18, 20, 2, 2, 0},
                                PoolShape{3, 33, 4, 4, 2, 2, 0}}) {
    const int total = 5, offset = 1;
    const std::size_t in_plane = std::size_t(base.in_h) * base.in_w, out_plane = std::size_t(base.out_h()) * base.out_w();
    Floats x(base.input_size());
    for (float& v : x) v = 0.25f * level(rng);  // ties
    const Floats y = random_vector(rng, base.output_size(), -1.0f, 1.0f);
    const Floats x0 = random_vector(rng, base.input_size(), -1.0f, 1.0f);  // what unpooling accumulates onto
    // NCHW results.
    auto device_x = upload(*backend, x), device_y = upload(*backend, y), max_x_acc = upload(*backend, x0);
    DeviceBuffer<float> max_y(*backend, base.output_size()), max_x(*backend, base.input_size()),
        avg_y(*backend, base.output_size()), avg_x(*backend, base.input_size());
    DeviceBuffer<std::int32_t> argmax(*backend, base.output_size());
    eqprop::max_pool2d(*backend, base, device_x.data(), max_y.data(), argmax.data());
    eqprop::max_unpool2d(*backend, base, device_y.data(), argmax.data(), max_x.data());
    eqprop::max_unpool2d(*backend, base, device_y.data(), argmax.data(), max_x_acc.data(), true);
    eqprop::avg_pool2d(*backend, base, device_x.data(), avg_y.data());
    eqprop::avg_unpool2d(*backend, base, device_y.data(), avg_x.data());

    struct Variant {
      const char* name;
      Order input, output;  // of x and of y with the argmax
    };
    for (const Variant& v : {Variant{"CNHW slice -> NCHW", Order::cnhw, Order::nchw},
                             Variant{"NCHW slice -> CNHW", Order::nchw, Order::cnhw},
                             Variant{"NHWC slice -> NCHW", Order::nhwc, Order::nchw},
                             Variant{"NHWC slice -> CNHW", Order::nhwc, Order::cnhw},
                             Variant{"NCHW slice -> NHWC", Order::nchw, Order::nhwc}}) {
      PoolShape s = base;
      s.input_layout = layout_of(v.input, total, base.channels);
      s.output_layout = layout_of(v.output, total, base.channels);
      const PlaneLayout in_layout = s.input_planes(), out_layout = s.output_planes();
      const std::size_t in_size = total * base.channels * in_plane, out_size = total * base.channels * out_plane;
      auto whole = [&](const Floats& slice, std::size_t plane) {
        Floats tensor(total * base.channels * plane, 0.0f);
        std::copy(slice.begin(), slice.end(), tensor.begin() + offset * base.channels * plane);
        return tensor;
      };
      auto lx = upload(*backend, place(whole(x, in_plane), total, base.channels, in_plane, in_layout, in_size, 0.0f));
      auto ly = upload(*backend, place(whole(y, out_plane), total, base.channels, out_plane, out_layout, out_size, 0.0f));
      auto l_max_x_acc =
          upload(*backend, place(whole(x0, in_plane), total, base.channels, in_plane, in_layout, in_size, 0.0f));
      DeviceBuffer<float> l_max_y(*backend, out_size), l_max_x(*backend, in_size), l_avg_y(*backend, out_size),
          l_avg_x(*backend, in_size);
      DeviceBuffer<std::int32_t> l_argmax(*backend, out_size);
      const std::size_t in_shift = offset * in_layout.sample_stride * in_plane;
      const std::size_t out_shift = offset * out_layout.sample_stride * out_plane;
      eqprop::max_pool2d(*backend, s, lx.data() + in_shift, l_max_y.data() + out_shift, l_argmax.data() + out_shift);
      eqprop::max_unpool2d(*backend, s, ly.data() + out_shift, l_argmax.data() + out_shift, l_max_x.data() + in_shift);
      eqprop::max_unpool2d(*backend, s, ly.data() + out_shift, l_argmax.data() + out_shift,
                           l_max_x_acc.data() + in_shift, true);
      eqprop::avg_pool2d(*backend, s, lx.data() + in_shift, l_avg_y.data() + out_shift);
      eqprop::avg_unpool2d(*backend, s, ly.data() + out_shift, l_avg_x.data() + in_shift);
      auto slice = [&](const Floats& tensor, std::size_t plane, const PlaneLayout& layout) {
        const Floats nchw = gather_nchw(tensor, total, base.channels, plane, layout);
        return Floats(nchw.begin() + offset * base.channels * plane,
                      nchw.begin() + (offset + base.batch) * base.channels * plane);
      };
      const std::string name = describe(base) + ", " + v.name;
      eqprop::test::check_bit_exact(name + " max pool", slice(l_max_y.to_host(), out_plane, out_layout), max_y.to_host());
      eqprop::test::check_bit_exact(name + " max unpool", slice(l_max_x.to_host(), in_plane, in_layout), max_x.to_host());
      eqprop::test::check_bit_exact(name + " max unpool accumulate", slice(l_max_x_acc.to_host(), in_plane, in_layout),
                                    max_x_acc.to_host());
      eqprop::test::check_bit_exact(name + " avg pool", slice(l_avg_y.to_host(), out_plane, out_layout), avg_y.to_host());
      eqprop::test::check_bit_exact(name + " avg unpool", slice(l_avg_x.to_host(), in_plane, in_layout), avg_x.to_host());
      const Indices whole_argmax = l_argmax.to_host();
      const Indices nchw_argmax = gather_nchw(whole_argmax, total, base.channels, out_plane, out_layout);
      CHECK_MESSAGE(Indices(nchw_argmax.begin() + offset * base.channels * out_plane,
                            nchw_argmax.begin() + (offset + base.batch) * base.channels * out_plane) == argmax.to_host(),
                    name);
    }
  }
}

// ---------------------------------------------------------------------------------
// CPU run() (row paths, OpenMP) against a plain loop over op(i), as the GPU runs it

namespace {

struct Outputs {
  Floats values;
  Indices indices;
  std::vector<std::uint16_t> bf16{};
};

// Runs the op that make(outputs) builds over `count` indices: by backend.run, and
// by op(i) in forward, reverse and shuffled order, each from the same `initial`
// outputs; all must agree bit for bit.
template <class Make>
void check_run_equals_op_loop(Backend& backend, const std::string& what, const Outputs& initial, std::int64_t count,
                              Make make) {
  Outputs by_run = initial;
  backend.run(make(by_run), count);
  std::vector<std::int64_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(99);
  for (const char* name : {"forward", "reverse", "shuffled"}) {
    if (std::string(name) == "reverse") std::reverse(order.begin(), order.end());
    if (std::string(name) == "shuffled") std::shuffle(order.begin(), order.end(), rng);
    Outputs by_loop = initial;
    const auto op = make(by_loop);
    for (std::int64_t i : order) op(i);
    eqprop::test::check_bit_exact(what + ": run() vs op(i) " + name, by_run.values, by_loop.values);
    CHECK_MESSAGE(by_run.indices == by_loop.indices, what << ": argmax of run() vs op(i) " << name);
    CHECK_MESSAGE(by_run.bf16 == by_loop.bf16, what << ": bf16 values of run() vs op(i) " << name);
  }
}

}  // namespace

TEST_CASE("conv: every op's CPU run() equals a loop over op(i), bit for bit (serial and OpenMP sizes)") {
  auto backend = cpu();
  std::mt19937 rng(21);
  // Small (serial) and large (>= 8192 indices: the OpenMP row loops) shapes, NCHW,
  // CNHW and NHWC; 20 output channels onto 9x10 positions: PlaneRelayoutOp's tiles
  // from NHWC, whole and partial in both channels and positions; the CIFAR-10
  // recipe's last layer in small (4x4 -> 2x2, no padding: im2col's and col2im's
  // unchecked windows, as the stride-2 one without padding).
  for (const ConvShape& base : {ConvShape{3, 5, 7, 6, 2, 3, 2, 1}, ConvShape{3, 5, 13, 12, 4, 3, 1, 1},
                                ConvShape{2, 4, 11, 9, 3, 2, 2, 0}, ConvShape{4, 8, 20, 17, 16, 3, 1, 1},
                                ConvShape{2, 3, 9, 10, 20, 3, 1, 1}, ConvShape{3, 6, 4, 4, 5, 3, 1, 0}}) {
    for (const Order order : {Order::nchw, Order::cnhw, Order::nhwc}) {
      ConvShape s = base;
      s.input_layout = layout_of(order, s.batch, s.in_channels);
      s.output_layout = layout_of(order, s.batch, s.out_channels);
      const char* order_names[] = {", NCHW", ", CNHW", ", NHWC"};
      const std::string where = describe(s) + order_names[static_cast<int>(order)];
      const Floats x = random_vector(rng, s.input_size(), -1.0f, 1.0f);
      const Floats columns = random_vector(rng, s.columns_size(), -1.0f, 1.0f);
      const Floats y = random_vector(rng, s.output_size(), -1.0f, 1.0f);
      const Floats bias = random_vector(rng, s.out_channels, -1.0f, 1.0f);
      const auto positions = static_cast<std::int32_t>(s.positions());
      check_run_equals_op_loop(*backend, "Im2colOp, " + where, Outputs{Floats(s.columns_size(), -7.0f), {}},
                               s.columns_size(), [&](Outputs& out) {
                                 return eqprop::Im2colOp{x.data(), out.values.data(), s.input_planes(), s.window(),
                                                         s.in_channels, positions};
                               });
      for (const bool accumulate : {false, true})
        check_run_equals_op_loop(*backend, "Col2imOp, " + where, Outputs{random_vector(rng, s.input_size(), -1, 1), {}},
                                 s.input_size(), [&](Outputs& out) {
                                   return eqprop::Col2imOp{columns.data(), out.values.data(), s.input_planes(),
                                                           s.window(), s.in_channels, positions, accumulate};
                                 });
      const std::int32_t out_plane = s.out_h() * s.out_w();
      for (const bool accumulate : {false, true})
        for (const float* b : {bias.data(), static_cast<const float*>(nullptr)})
          check_run_equals_op_loop(
              *backend, "PlaneRelayoutOp, " + where, Outputs{random_vector(rng, s.output_size(), -1, 1), {}},
              s.output_size(), [&](Outputs& out) {
                return eqprop::PlaneRelayoutOp{y.data(), out.values.data(), b, s.output_planes(),
                                               eqprop::cnhw_layout(s.batch), s.out_channels, out_plane, accumulate};
              });
      // In place (the bias epilogue of a GEMM-shaped output).
      check_run_equals_op_loop(*backend, "PlaneRelayoutOp in place, " + where, Outputs{y, {}}, s.output_size(),
                               [&](Outputs& out) {
                                 return eqprop::PlaneRelayoutOp{out.values.data(), out.values.data(), bias.data(),
                                                                s.output_planes(), s.output_planes(), s.out_channels,
                                                                out_plane, false};
                               });
    }
  }
}

TEST_CASE("pool: every pooling op's CPU run() equals a loop over op(i), bit for bit") {
  auto backend = cpu();
  std::mt19937 rng(22);
  std::uniform_int_distribution<int> level(0, 3);
  // The 2x2 tilings onto every square pooled plane the row paths take as constants
  // (1, 2, 4, 7, 8, 14: kernels/max_pool.h, with_pooled_plane) and onto others
  // (3x2, 4x3, 2x7, 12x12, 16x16) at run-time sizes; NCHW, CNHW, and a channels-last
  // input with NCHW output, whose 2x2 tilings take channel blocks (a partial one at
  // 20 channels) through position tiles (9x10 = 90 pooled positions, two tiles).
  for (const PoolShape& base :
       {PoolShape{3, 4, 9, 7, 2, 2, 0}, PoolShape{3, 8, 33, 31, 3, 2, 1}, PoolShape{2, 5, 17, 19, 2, 1, 0},
        PoolShape{4, 16, 24, 24, 2, 2, 0}, PoolShape{2, 3, 2, 2, 2, 2, 0}, PoolShape{2, 3, 4, 4, 2, 2, 0},
        PoolShape{2, 3, 8, 8, 2, 2, 0}, PoolShape{2, 3, 14, 14, 2, 2, 0}, PoolShape{2, 3, 16, 16, 2, 2, 0},
        PoolShape{2, 3, 28, 28, 2, 2, 0}, PoolShape{2, 3, 6, 4, 2, 2, 0}, PoolShape{2, 3, 8, 6, 2, 2, 0},
        PoolShape{2, 3, 4, 14, 2, 2, 0}, PoolShape{2, 3, 32, 32, 2, 2, 0}, PoolShape{3, 20, 18, 20, 2, 2, 0}}) {
    for (const Order order : {Order::nchw, Order::cnhw, Order::nhwc}) {
      PoolShape s = base;
      s.input_layout = layout_of(order, s.batch, s.channels);
      s.output_layout = order == Order::cnhw ? eqprop::cnhw_layout(s.batch) : eqprop::nchw_layout(s.channels);
      const char* order_names[] = {", NCHW", ", CNHW", ", NHWC -> NCHW"};
      const std::string where = describe(s) + order_names[static_cast<int>(order)];
      Floats x(s.input_size());
      for (float& v : x) v = 0.25f * level(rng);  // ties
      const Floats y = random_vector(rng, s.output_size(), -1.0f, 1.0f);
      const auto window = s.window();
      check_run_equals_op_loop(*backend, "MaxPoolOp, " + where,
                               Outputs{Floats(s.output_size(), -7.0f), Indices(s.output_size(), -7)}, s.output_size(),
                               [&](Outputs& out) {
                                 return eqprop::MaxPoolOp{x.data(), out.values.data(), out.indices.data(),
                                                          s.input_planes(), s.output_planes(), window, s.channels};
                               });
      // The argmax that MaxUnpoolOp reads: from a pooling of x.
      auto device_x = upload(*backend, x);
      DeviceBuffer<float> pooled(*backend, s.output_size());
      DeviceBuffer<std::int32_t> argmax(*backend, s.output_size());
      eqprop::max_pool2d(*backend, s, device_x.data(), pooled.data(), argmax.data());
      const Indices indices = argmax.to_host();
      // Selecting through x's own argmax is x's max pooling, bit for bit; through
      // it, selecting from another z is the adjoint of unpooling: <select(z), y> =
      // <z, unpool(y)>, each side one product per pooled element.
      const Floats z = random_vector(rng, s.input_size(), -1.0f, 1.0f);
      check_run_equals_op_loop(*backend, "MaxPoolSelectOp, " + where, Outputs{Floats(s.output_size(), -7.0f), {}},
                               s.output_size(), [&](Outputs& out) {
                                 return eqprop::MaxPoolSelectOp{z.data(), indices.data(), out.values.data(),
                                                                s.input_planes(), s.output_planes(), window,
                                                                s.channels};
                               });
      DeviceBuffer<float> selected(*backend, s.output_size());
      eqprop::max_pool2d_select(*backend, s, device_x.data(), argmax.data(), selected.data());
      eqprop::test::check_bit_exact("select through x's argmax = max pool of x, " + where, selected.to_host(),
                                    pooled.to_host());
      auto device_z = upload(*backend, z);
      auto device_y = upload(*backend, y);
      DeviceBuffer<float> unpooled(*backend, s.input_size());
      eqprop::max_pool2d_select(*backend, s, device_z.data(), argmax.data(), selected.data());
      eqprop::max_unpool2d(*backend, s, device_y.data(), argmax.data(), unpooled.data());
      CHECK(dot(selected.to_host(), y) == doctest::Approx(dot(z, unpooled.to_host())).epsilon(1e-5));
      for (const bool accumulate : {false, true}) {
        check_run_equals_op_loop(*backend, "MaxUnpoolOp, " + where,
                                 Outputs{random_vector(rng, s.input_size(), -1, 1), {}}, s.input_size(),
                                 [&](Outputs& out) {
                                   return eqprop::MaxUnpoolOp{y.data(), indices.data(), out.values.data(),
                                                              s.input_planes(), s.output_planes(), window, s.channels,
                                                              accumulate};
                                 });
        // Less a subtrahend, in fp32 and in bf16: the fp32 unpooling, then the
        // subtraction and the rounding, bit for bit.
        const Floats subtrahend = random_vector(rng, s.input_size(), -1, 1);
        Floats expected(s.input_size());
        backend->run(eqprop::MaxUnpoolOp{y.data(), indices.data(), expected.data(), s.input_planes(),
                                         s.output_planes(), window, s.channels, false},
                     s.input_size());
        std::vector<std::uint16_t> expected_bf16(s.input_size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
          expected[i] -= subtrahend[i];
          expected_bf16[i] = eqprop::bf16_bits(expected[i]);
        }
        for (const bool bf16 : {false, true}) {
          const Outputs initial{random_vector(rng, s.input_size(), -1, 1), {},
                                std::vector<std::uint16_t>(bf16 ? s.input_size() : 0, 7)};
          const auto make = [&](Outputs& out) {
            return eqprop::MaxUnpoolOp{y.data(),         indices.data(),  out.values.data(),
                                       s.input_planes(), s.output_planes(), window,
                                       s.channels,       false,           subtrahend.data(),
                                       bf16 ? out.bf16.data() : nullptr};
          };
          const std::string what = std::string("MaxUnpoolOp less a subtrahend") + (bf16 ? " into bf16, " : ", ");
          check_run_equals_op_loop(*backend, what + where, initial, s.input_size(), make);
          Outputs out = initial;
          backend->run(make(out), s.input_size());
          if (bf16) {
            CHECK_MESSAGE(out.bf16 == expected_bf16, what << where);
            eqprop::test::check_bit_exact(what + "leaves result alone, " + where, out.values, initial.values);
          } else {
            eqprop::test::check_bit_exact(what + where, out.values, expected);
          }
        }
        check_run_equals_op_loop(*backend, "AvgUnpoolOp, " + where,
                                 Outputs{random_vector(rng, s.input_size(), -1, 1), {}}, s.input_size(),
                                 [&](Outputs& out) {
                                   return eqprop::AvgUnpoolOp{y.data(), out.values.data(), s.input_planes(),
                                                              s.output_planes(), window, s.channels, accumulate};
                                 });
      }
      check_run_equals_op_loop(*backend, "AvgPoolOp, " + where, Outputs{Floats(s.output_size(), -7.0f), {}},
                               s.output_size(), [&](Outputs& out) {
                                 return eqprop::AvgPoolOp{x.data(), out.values.data(), s.input_planes(),
                                                          s.output_planes(), window, s.channels};
                               });
    }
  }
}

TEST_CASE("bf16: bf16_bits rounds to nearest even, makes denormals zeros, keeps NaN, Inf and signs") {
  const auto bits = [](std::uint32_t pattern) {
    float x;
    std::memcpy(&x, &pattern, sizeof x);
    return eqprop::bf16_bits(x);
  };
  CHECK(bits(0x3f800000u) == 0x3f80u);  // 1
  CHECK(bits(0x3f808000u) == 0x3f80u);  // half-way, to the even neighbour below
  CHECK(bits(0x3f818000u) == 0x3f82u);  // half-way, to the even neighbour above
  CHECK(bits(0x3f808001u) == 0x3f81u);  // just above half-way
  CHECK(bits(0xbf807fffu) == 0xbf80u);  // just below half-way, negative
  CHECK(bits(0x7f7fffffu) == 0x7f80u);  // the largest float rounds to Inf
  CHECK(bits(0x7f800000u) == 0x7f80u);
  CHECK(bits(0xff800000u) == 0xff80u);
  CHECK(bits(0x00000001u) == 0x0000u);  // denormals: zeros of their sign
  CHECK(bits(0x807fffffu) == 0x8000u);
  CHECK(bits(0x80000000u) == 0x8000u);
  CHECK(bits(0x7f800001u) == 0x7fc0u);  // a signalling NaN comes out quiet
  CHECK(bits(0xffc12345u) == 0xffc1u);
  // Normal numbers as the GEMM emulation rounds them (kernels/gemm_precision.h).
  std::mt19937 rng(41);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 100000; ++i) {
    std::uint32_t pattern = any(rng);
    if ((pattern & 0x7f800000u) == 0u || (pattern & 0x7f800000u) == 0x7f800000u) continue;
    float x;
    std::memcpy(&x, &pattern, sizeof x);
    CAPTURE(pattern);
    REQUIRE(bits_of(eqprop::bf16_value(eqprop::bf16_bits(x))) ==
            bits_of(eqprop::round_to_precision(x, eqprop::GemmPrecision::bf16)));
  }
}

TEST_CASE("ChannelsLastBf16Op: planes (less a subtrahend) into bf16 channels-last, run() = op(i) = the rounding") {
  auto backend = cpu();
  std::mt19937 rng(23);
  struct Case {
    int batch, channels, h, w;
  };
  // Whole position tiles with a partial channel block (20), partial tiles (9x10 = 90
  // positions), a plane below one tile (3x3), and OpenMP sizes (>= 8192 elements).
  for (const Case c : {Case{2, 20, 4, 4}, Case{3, 33, 9, 10}, Case{2, 5, 3, 3}, Case{2, 64, 16, 16},
                       Case{3, 16, 8, 8}}) {
    const std::int32_t plane = c.h * c.w;
    const std::int64_t count = std::int64_t(c.batch) * c.channels * plane;
    for (const Order order : {Order::nchw, Order::cnhw, Order::nhwc}) {
      const PlaneLayout in_layout = layout_of(order, c.batch, c.channels);
      const PlaneLayout out_layout = eqprop::nhwc_layout(c.channels);
      const Floats in = random_vector(rng, count, -2.0f, 2.0f), less = random_vector(rng, count, -1.0f, 1.0f);
      for (const bool subtract : {false, true}) {
        const std::string where = std::to_string(c.batch) + "x" + std::to_string(c.channels) + "x" +
                                  std::to_string(c.h) + "x" + std::to_string(c.w) +
                                  (order == Order::nchw ? " NCHW" : order == Order::cnhw ? " CNHW" : " NHWC") +
                                  (subtract ? ", less a subtrahend" : "");
        const Outputs initial{{}, {}, std::vector<std::uint16_t>(count, 7)};
        const auto make = [&](Outputs& out) {
          return eqprop::ChannelsLastBf16Op{in.data(), subtract ? less.data() : nullptr, out.bf16.data(), in_layout,
                                            out_layout, c.channels, plane};
        };
        check_run_equals_op_loop(*backend, "ChannelsLastBf16Op, " + where, initial, count, make);
        Outputs out = initial;
        backend->run(make(out), count);
        std::vector<std::uint16_t> expected(count);
        for (int b = 0; b < c.batch; ++b)
          for (int k = 0; k < c.channels; ++k)
            for (int p = 0; p < plane; ++p) {
              const std::int64_t at = in_layout.at(b, k, p, plane);
              expected[(std::int64_t(b) * plane + p) * c.channels + k] =
                  eqprop::bf16_bits(subtract ? in[at] - less[at] : in[at]);
            }
        CHECK_MESSAGE(out.bf16 == expected, "ChannelsLastBf16Op, " << where);
      }
    }
  }
}

TEST_CASE("PlanesFromBf16Op: bf16 channels-last into fp32 planes, alpha and beta, run() = op(i) = the formula") {
  auto backend = cpu();
  std::mt19937 rng(29);
  struct Case {
    int batch, channels, h, w;
  };
  struct Scale {
    float alpha, beta;
  };
  for (const Case c : {Case{2, 20, 4, 4}, Case{3, 33, 9, 10}, Case{2, 64, 16, 16}}) {
    const std::int32_t plane = c.h * c.w;
    const std::int64_t count = std::int64_t(c.batch) * c.channels * plane;
    const PlaneLayout in_layout = eqprop::nhwc_layout(c.channels);
    std::vector<std::uint16_t> in(count);
    const Floats values = random_vector(rng, count, -3.0f, 3.0f);
    for (std::int64_t i = 0; i < count; ++i) in[i] = eqprop::bf16_bits(values[i]);
    const Floats before = random_vector(rng, count, -1.0f, 1.0f);
    for (const Order order : {Order::nchw, Order::cnhw, Order::nhwc}) {
      const PlaneLayout out_layout = layout_of(order, c.batch, c.channels);
      // beta = 0 must not read the output: it starts as NaN there.
      for (const Scale scale : {Scale{1.0f, 0.0f}, Scale{-0.5f, 1.0f}, Scale{1.5f, 0.25f}}) {
        const std::string where = std::to_string(c.batch) + "x" + std::to_string(c.channels) + "x" +
                                  std::to_string(c.h) + "x" + std::to_string(c.w) + " into " +
                                  (order == Order::nchw ? "NCHW" : order == Order::cnhw ? "CNHW" : "NHWC") +
                                  ", alpha " + std::to_string(scale.alpha) + ", beta " + std::to_string(scale.beta);
        const Outputs initial{scale.beta == 0.0f ? Floats(count, std::numeric_limits<float>::quiet_NaN()) : before};
        const auto make = [&](Outputs& out) {
          return eqprop::PlanesFromBf16Op{in.data(), out.values.data(), in_layout, out_layout, c.channels, plane,
                                          scale.alpha, scale.beta};
        };
        check_run_equals_op_loop(*backend, "PlanesFromBf16Op, " + where, initial, count, make);
        Outputs out = initial;
        backend->run(make(out), count);
        std::int64_t wrong = 0;
        for (int b = 0; b < c.batch; ++b)
          for (int k = 0; k < c.channels; ++k)
            for (int p = 0; p < plane; ++p) {
              const std::int64_t at = out_layout.at(b, k, p, plane);
              const double expected = double(scale.alpha) * eqprop::bf16_value(in[in_layout.at(b, k, p, plane)]) +
                                      (scale.beta == 0.0f ? 0.0 : double(scale.beta) * initial.values[at]);
              if (!(std::fabs(out.values[at] - expected) <= 1e-6 * (1.0 + std::fabs(expected)))) ++wrong;
            }
        CHECK_MESSAGE(wrong == 0, "PlanesFromBf16Op, " << where << ": " << wrong << " elements differ");
      }
    }
  }
}

TEST_CASE("index math: divide_index gives the 64-bit quotient and remainder on both of its paths") {
  const std::int64_t two32 = std::int64_t(1) << 32;
  const std::int64_t dividends[] = {0, 1, 7, 4095, 4096, 2147483647, two32 - 1, two32, two32 + 5, 3 * two32 + 11,
                                    std::numeric_limits<std::int64_t>::max()};
  const std::int64_t divisors[] = {1, 3, 7, 32, 1000, 4096, 2147483647, two32 - 1, two32, two32 + 3};
  for (const std::int64_t n : dividends)
    for (const std::int64_t d : divisors) {
      CAPTURE(n);
      CAPTURE(d);
      const eqprop::IndexDivision q = eqprop::divide_index(n, d);
      CHECK(q.quotient == n / d);
      CHECK(q.remainder == n % d);
    }
  // A flat index beyond 2^32 (the 64-bit path) decomposes like the naive formula.
  const std::int64_t i = 5 * two32 + 12345;
  const eqprop::PlaneIndex at = eqprop::plane_index(i, 3, 1024, 1024);
  const std::int64_t plane = i / (1024 * 1024);
  CHECK(at.sample == plane / 3);
  CHECK(at.channel == plane % 3);
  CHECK(at.y == (i % (1024 * 1024)) / 1024);
  CHECK(at.x == i % 1024);
}
