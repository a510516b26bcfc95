// cuDNN's convolutions (the CUDA backend's Backend::convolution_*) against the naive
// double reference of tests/conv_library_check.h: fp32 (CUDNN_FMA_MATH) within
// 1e-5 of the sum of |products|, tf32 (10-bit mantissas: 2^-10 per product) within
// 2^-10 + 1e-5; bf16 within the bf16 bound on im2col (cuBLAS bf16, fp32 results)
// and, on cuDNN, that bound plus the rounding of each result to bf16 (2^-9 of it,
// at most 2^-9 of the sum of |products|: kernels/cudnn_convolution.h).
// Skips where no GPU is visible.
#include <doctest/doctest.h>

#include "tests/conv_library_check.h"

using namespace eqprop::test::conv_library;

namespace {
// cuDNN's bf16 results: the bf16 bound plus their own rounding to bf16.
constexpr double kCudnnBf16Tolerance = kBf16Tolerance + 1.0 / 512.0;
}  // namespace

namespace {

// True if the backend runs a library convolution at fp32 (built with cuDNN).
bool has_library(eqprop::Backend& backend) {
  backend.set_convolution_path(ConvolutionPath::library);
  backend.set_gemm_precision(GemmPrecision::fp32);
  const eqprop::ConvShape shape = kCases[0];
  ConvScratch scratch(backend, shape);
  eqprop::DeviceBuffer<float> x(backend, shape.input_size()), w(backend, shape.weight_size()),
      y(backend, shape.output_size());
  try {
    eqprop::conv2d_forward(backend, shape, x.data(), w.data(), nullptr, y.data(), scratch.workspace());
  } catch (const eqprop::DeviceError&) {
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE("cuda conv library: cuDNN fp32 and tf32 match the naive double reference") {
  if (eqprop::test::skip_without_gpu()) return;
  auto backend = eqprop::make_backend("cuda");
  if (eqprop::test::skip_case_if(!has_library(*backend), "built without cuDNN")) return;
  check_path(*backend, ConvolutionPath::library, GemmPrecision::fp32, kFp32Tolerance, YLayout::nchw);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::fp32, kFp32Tolerance, YLayout::cnhw);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::fp32, kFp32Tolerance, YLayout::nhwc);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::tf32, 1.0 / 1024.0 + 1e-5, YLayout::nchw);
}

TEST_CASE("cuda conv library: cuDNN bf16 matches the naive double reference within the bf16 bound and its rounding") {
  if (eqprop::test::skip_without_gpu()) return;
  auto backend = eqprop::make_backend("cuda");
  if (eqprop::test::skip_case_if(!has_library(*backend), "built without cuDNN")) return;
  for (const YLayout layout : {YLayout::nchw, YLayout::cnhw, YLayout::nhwc}) {
    check_path(*backend, ConvolutionPath::library_only, GemmPrecision::bf16, kCudnnBf16Tolerance, layout);
    // automatic takes the library for bf16 products
    check_path(*backend, ConvolutionPath::automatic, GemmPrecision::bf16, kCudnnBf16Tolerance, layout);
  }
}

TEST_CASE("cuda conv library: bf16 on im2col (cuBLAS bf16) within the bf16 bound") {
  if (eqprop::test::skip_without_gpu()) return;
  auto backend = eqprop::make_backend("cuda");
  check_path(*backend, ConvolutionPath::im2col, GemmPrecision::bf16, kBf16Tolerance, YLayout::cnhw);
}

TEST_CASE("cuda conv library: cuDNN bf16 takes bf16 channels-last operands as they are, and refuses planar ones") {
  if (eqprop::test::skip_without_gpu()) return;
  auto backend = eqprop::make_backend("cuda");
  if (eqprop::test::skip_case_if(!has_library(*backend), "built without cuDNN")) return;
  using eqprop::OperandType;
  using Direction = eqprop::ConvolutionDirection;
  backend->set_convolution_path(ConvolutionPath::library_only);
  backend->set_gemm_precision(GemmPrecision::bf16);
  std::mt19937 rng(41);
  for (const ConvShape& base : kCases) {
    const std::string where = text(base);
    CAPTURE(where);
    ConvShape planar = base;
    planar.x_type = planar.y_type = OperandType::bf16;
    for (const Direction direction : {Direction::forward, Direction::backward_data, Direction::backward_weights})
      CHECK_FALSE(eqprop::conv_library_takes_bf16(*backend, planar, direction));
    ConvShape bf16 = base;
    bf16.input_layout = eqprop::nhwc_layout(base.in_channels);
    bf16.output_layout = eqprop::nhwc_layout(base.out_channels);
    bf16.x_type = bf16.y_type = OperandType::bf16;
    for (const Direction direction : {Direction::forward, Direction::backward_data, Direction::backward_weights})
      REQUIRE(eqprop::conv_library_takes_bf16(*backend, bf16, direction));
    const Floats x = eqprop::test::random_vector(rng, base.input_size(), -1.0f, 1.0f);
    const Floats w = eqprop::test::random_vector(rng, base.weight_size(), -1.0f, 1.0f);
    const Floats y = eqprop::test::random_vector(rng, base.output_size(), -1.0f, 1.0f);
    const Reference r = naive(base, x, w, y);
    auto x_bf16 = bf16_copy(*backend, x, base.batch, base.in_channels, base.in_h * base.in_w, bf16.input_layout);
    auto y_bf16 =
        bf16_copy(*backend, y, base.batch, base.out_channels, base.out_h() * base.out_w(), bf16.output_layout);
    auto weights = upload(*backend, w);
    // Each result in NCHW fp32, the operand it is computed from in bf16 NHWC.
    ConvShape forward = bf16;
    forward.output_layout = eqprop::nchw_layout(base.out_channels);
    eqprop::DeviceBuffer<float> out(*backend, base.output_size());
    eqprop::conv2d_forward_library(*backend, forward, x_bf16.data(), weights.data(), out.data());
    check_close(where + " forward", download(*backend, out, base.output_size()), r.y, r.y_abs, kCudnnBf16Tolerance);
    ConvShape backward = bf16;
    backward.input_layout = eqprop::nchw_layout(base.in_channels);
    eqprop::DeviceBuffer<float> back(*backend, base.input_size());
    eqprop::conv2d_transpose_library(*backend, backward, y_bf16.data(), weights.data(), back.data());
    check_close(where + " backward-data", download(*backend, back, base.input_size()), r.x, r.x_abs,
                kCudnnBf16Tolerance);
    eqprop::DeviceBuffer<float> g(*backend, base.weight_size());
    eqprop::conv2d_weight_gradient_library(*backend, bf16, x_bf16.data(), y_bf16.data(), 1.0f, 0.0f, g.data());
    check_close(where + " backward-weights", download(*backend, g, base.weight_size()), r.g, r.g_abs,
                kCudnnBf16Tolerance);
  }
}
