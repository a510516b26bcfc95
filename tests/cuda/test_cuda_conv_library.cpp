// cuDNN's convolutions (the CUDA backend's Backend::convolution_*) against the naive
// double reference of tests/conv_library_check.h: fp32 (CUDNN_FMA_MATH) within
// 1e-5 of the sum of |products|, tf32 (10-bit mantissas: 2^-10 per product) within
// 2^-10 + 1e-5; bf16 takes the im2col path (cuBLAS bf16) within the bf16 bound.
// Skips where no GPU is visible.
#include <doctest/doctest.h>

#include "tests/conv_library_check.h"

using namespace eqprop::test::conv_library;

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

TEST_CASE("cuda conv library: bf16 on auto falls back to im2col within the bf16 bound") {
  if (eqprop::test::skip_without_gpu()) return;
  auto backend = eqprop::make_backend("cuda");
  check_path(*backend, ConvolutionPath::automatic, GemmPrecision::bf16, kBf16Tolerance, YLayout::cnhw);
}
