// CPU vs CUDA parity of the convolution and pooling building blocks
// (models/conv_ops.h): the same calls on both backends, on the same random data.
//
// Tolerances follow each piece's declared determinism (STYLE.md, habit 5):
//  - im2col, col2im, the NCHW <-> CNHW reordering and every pooling op (values and
//    argmax) are bit-exact (this needs the CUDA backend compiled with -fmad=false);
//  - the GEMM-based results (forward, transposed conv, kernel update) agree up to
//    summation order: (terms + 2) * 2^-24 * sum |products| per element, where the
//    sum of |products| is computed by the CPU backend itself on |inputs|.
// Plain C++: only kernels/backend.h; where no GPU is visible the cases skip.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/im2col.h"
#include "kernels/plane_layout.h"
#include "models/conv_ops.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace {

using eqprop::Backend;
using eqprop::ConvScratch;
using eqprop::ConvShape;
using eqprop::DeviceBuffer;
using eqprop::PoolShape;
using eqprop::test::random_vector;
using Floats = std::vector<float>;

DeviceBuffer<float> upload(Backend& backend, const Floats& host) {
  DeviceBuffer<float> buffer(backend, host.size());
  buffer.copy_from_host(host);
  return buffer;
}

Floats absolute(Floats values) {
  for (float& v : values) v = std::fabs(v);
  return values;
}

// The three products of one shape on one backend: forward (with bias), transposed,
// kernel update, and the column matrix of x.
struct ConvResults {
  Floats columns, forward, transposed, gradient;
};

ConvResults run_conv(Backend& backend, const ConvShape& s, const Floats& x, const Floats& w, const Floats* bias,
                     const Floats& y) {
  ConvScratch scratch(backend, s);
  auto dx = upload(backend, x), dw = upload(backend, w), dy = upload(backend, y);
  DeviceBuffer<float> dbias = bias ? upload(backend, *bias) : DeviceBuffer<float>();
  DeviceBuffer<float> columns(backend, s.columns_size()), forward(backend, s.output_size()),
      transposed(backend, s.input_size()), gradient(backend, s.weight_size());
  eqprop::conv2d_im2col(backend, s, dx.data(), columns.data());
  eqprop::conv2d_forward(backend, s, dx.data(), dw.data(), bias ? dbias.data() : nullptr, forward.data(),
                         scratch.workspace());
  eqprop::conv2d_transpose(backend, s, dy.data(), dw.data(), transposed.data(), scratch.workspace());
  eqprop::conv2d_weight_gradient(backend, s, dx.data(), dy.data(), 1.0f, 0.0f, gradient.data(), scratch.workspace());
  backend.synchronize();
  return {columns.to_host(), forward.to_host(), transposed.to_host(), gradient.to_host()};
}

// cuda agrees with cpu up to summation order: each sums `terms` products, so each
// is within (terms + 2) 2^-24 sum |products| of the exact value.
void check_within(const std::string& what, const Floats& cpu, const Floats& cuda, const Floats& magnitude,
                  double terms) {
  std::vector<double> budget(magnitude.size());
  for (std::size_t i = 0; i < budget.size(); ++i)
    budget[i] = (terms + 2.0) * std::ldexp(1.0, -24) * magnitude[i] * 2.0 + 1e-30;  // both err
  eqprop::test::check_within(what, cuda, cpu, budget);
}

}  // namespace

TEST_CASE("cuda conv: im2col is bit-exact and the three conv GEMMs agree with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = eqprop::make_backend("cpu"), cuda = eqprop::make_backend("cuda");
  std::mt19937 rng(31);
  for (ConvShape s : {ConvShape{3, 3, 9, 7, 8, 3, 1, 1}, ConvShape{5, 5, 12, 11, 2, 3, 2, 0},
                      ConvShape{1, 16, 8, 8, 32, 3, 1, 1}, ConvShape{4, 8, 16, 16, 16, 2, 2, 0}}) {
    for (const bool channel_major : {false, true}) {
      if (channel_major) s.input_layout = eqprop::cnhw_layout(s.batch), s.output_layout = eqprop::cnhw_layout(s.batch);
      std::ostringstream what;
      what << "batch " << s.batch << ", " << s.in_channels << "->" << s.out_channels << ", " << s.in_h << "x"
           << s.in_w << ", k" << s.kernel << " s" << s.stride << " p" << s.padding
           << (channel_major ? ", CNHW" : ", NCHW");
      const Floats x = random_vector(rng, s.input_size(), -1.0f, 1.0f), w = random_vector(rng, s.weight_size(), -1, 1),
                   bias = random_vector(rng, s.out_channels, -1, 1), y = random_vector(rng, s.output_size(), -1, 1);
      const ConvResults on_cpu = run_conv(*cpu, s, x, w, &bias, y);
      const ConvResults on_cuda = run_conv(*cuda, s, x, w, &bias, y);
      const Floats abs_bias = absolute(bias);
      const ConvResults magnitude = run_conv(*cpu, s, absolute(x), absolute(w), &abs_bias, absolute(y));
      eqprop::test::check_bit_exact(what.str() + ": im2col (cuda vs cpu)", on_cuda.columns, on_cpu.columns);
      check_within(what.str() + ": forward", on_cpu.forward, on_cuda.forward, magnitude.forward,
                   double(s.patch_size()) + 1);
      check_within(what.str() + ": transposed", on_cpu.transposed, on_cuda.transposed, magnitude.transposed,
                   double(s.out_channels) * s.kernel * s.kernel);
      check_within(what.str() + ": kernel update", on_cpu.gradient, on_cuda.gradient, magnitude.gradient,
                   double(s.positions()));
    }
  }
}

TEST_CASE("cuda conv: col2im, reordering and pooling ops are bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = eqprop::make_backend("cpu"), cuda = eqprop::make_backend("cuda");
  std::mt19937 rng(32);
  // col2im and the reordering through a transposed conv whose GEMM input is shared:
  // run Col2imOp directly on the same column matrix.
  const ConvShape s{3, 5, 13, 12, 4, 3, 2, 1};
  const Floats columns = random_vector(rng, s.columns_size(), -1.0f, 1.0f);
  const Floats y = random_vector(rng, s.output_size(), -1.0f, 1.0f);
  const Floats bias = random_vector(rng, s.out_channels, -1.0f, 1.0f);
  auto fold = [&](Backend& backend) {
    auto dcolumns = upload(backend, columns), dy = upload(backend, y), dbias = upload(backend, bias);
    DeviceBuffer<float> x(backend, s.input_size()), reordered(backend, s.output_size());
    backend.run(eqprop::Col2imOp{dcolumns.data(), x.data(), s.input_planes(), s.window(), s.in_channels,
                                 static_cast<std::int32_t>(s.positions()), false},
                s.input_size());
    backend.run(eqprop::PlaneRelayoutOp{dy.data(), reordered.data(), dbias.data(), s.output_planes(),
                                        eqprop::cnhw_layout(s.batch), s.out_channels, s.out_h() * s.out_w(), false},
                s.output_size());
    backend.synchronize();
    return std::vector<Floats>{x.to_host(), reordered.to_host()};
  };
  const auto on_cpu = fold(*cpu), on_cuda = fold(*cuda);
  eqprop::test::check_declared_agreement<eqprop::Col2imOp>("Col2imOp (cuda vs cpu)", on_cuda[0], on_cpu[0]);
  eqprop::test::check_declared_agreement<eqprop::PlaneRelayoutOp>("PlaneRelayoutOp (cuda vs cpu)", on_cuda[1],
                                                                 on_cpu[1]);

  std::uniform_int_distribution<int> level(0, 3);
  for (const PoolShape& p : {PoolShape{3, 8, 33, 31, 2, 2, 0}, PoolShape{2, 4, 17, 19, 3, 2, 1},
                             PoolShape{2, 4, 9, 10, 2, 1, 0}}) {
    Floats x(p.input_size());
    for (float& v : x) v = 0.25f * level(rng);  // ties
    const Floats pooled_side = random_vector(rng, p.output_size(), -1.0f, 1.0f);
    auto pool = [&](Backend& backend) {
      auto dx = upload(backend, x), dy = upload(backend, pooled_side);
      DeviceBuffer<float> max_y(backend, p.output_size()), avg_y(backend, p.output_size()),
          max_x(backend, p.input_size()), avg_x(backend, p.input_size());
      DeviceBuffer<std::int32_t> argmax(backend, p.output_size());
      eqprop::max_pool2d(backend, p, dx.data(), max_y.data(), argmax.data());
      eqprop::max_unpool2d(backend, p, dy.data(), argmax.data(), max_x.data());
      eqprop::avg_pool2d(backend, p, dx.data(), avg_y.data());
      eqprop::avg_unpool2d(backend, p, dy.data(), avg_x.data());
      backend.synchronize();
      return std::make_pair(std::vector<Floats>{max_y.to_host(), max_x.to_host(), avg_y.to_host(), avg_x.to_host()},
                            argmax.to_host());
    };
    const auto [cpu_values, cpu_argmax] = pool(*cpu);
    const auto [cuda_values, cuda_argmax] = pool(*cuda);
    const char* names[] = {"max pool", "max unpool", "avg pool", "avg unpool"};
    for (int i = 0; i < 4; ++i)
      eqprop::test::check_bit_exact(std::string(names[i]) + " (cuda vs cpu)", cuda_values[i], cpu_values[i]);
    CHECK(cuda_argmax == cpu_argmax);
  }
}
