// A device's convolution library behind Backend::convolution_* (kernels/backend.h):
// oneDNN on the CPU (kernels/dnnl_convolution.h), cuDNN on CUDA
// (kernels/cudnn_convolution.h). The backend passes its gemm_precision(); a
// library builds its primitives once per geometry, precision and direction and
// caches them under convolution_plan_key().
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "kernels/gemm_precision.h"
#include "kernels/plane_layout.h"
#include "kernels/sliding_window.h"

namespace eqprop {

// Which path models/conv_ops.h takes (training.conv_path, Backend::set_convolution_path).
//  - library: the library, except the calls its routing table (ConvolutionLibrary::
//    prefers_gemm) measured slower there than im2col + the backend's GEMM;
//  - library_only: every call on the library, none routed (tests, and timing the
//    library's own kernels);
//  - im2col: im2col + GEMM everywhere, the bit-exact reference;
//  - automatic: library for bf16 products, im2col otherwise (Backend::set_convolution_path).
enum class ConvolutionPath { automatic, library, im2col, library_only };

enum class ConvolutionDirection { forward, backward_data, backward_weights };

// How the caller holds x or y where a call reads it: fp32, or the bf16 roundings of
// the values (kernels/bf16.h), converted where an op produced them. A bf16 product
// converts its fp32 operands anyway; an operand handed over in bf16 saves the
// library that pass. Only a bf16 call takes bf16 operands
// (ConvolutionLibrary::takes_bf16_operands), and results are always fp32.
enum class OperandType : std::uint8_t { f32 = 0, bf16 = 1 };

// One 2-D convolution of a batch, as a library call sees it (models/conv_ops.h has
// the math and the im2col + gemm reference): x (batch, in_channels, in_h, in_w) in
// input_layout, y (batch, out_channels, out_h, out_w) in output_layout, weights
// (out_channels, in_channels, kernel, kernel) row-major, no bias.
struct ConvolutionGeometry {
  std::int32_t batch = 1, in_channels = 1, out_channels = 1;
  SlidingWindow window{};
  PlaneLayout input_layout{}, output_layout{};
  // The storage of x and y where the call reads them (forward: x; backward_data: y;
  // backward_weights: both). A call's output is fp32 whatever its type says.
  OperandType x_type = OperandType::f32, y_type = OperandType::f32;
  // Not part of the plan: a caller's promise about the weights. Two calls with the
  // same nonzero version and the same weights pointer see the same weight values,
  // so a library may reuse what it derived from them (oneDNN's reordered copy)
  // without reading them again. 0: no promise; the library compares the values.
  // Versions come from fresh_weights_version(), never reused within a process.
  std::uint64_t weights_version = 0;
};

// A version no earlier call of this process has returned (1, 2, ...; thread-safe).
std::uint64_t fresh_weights_version();

class ConvolutionLibrary {
 public:
  virtual ~ConvolutionLibrary() = default;
  // Backend::convolution_*'s contract in an explicit precision: false (nothing
  // computed) where the library has no primitive for the geometry or the precision.
  // x and y, where read, point to geometry.x_type / y_type values.
  virtual bool forward(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* x,
                       const float* weights, float* y) = 0;
  virtual bool backward_data(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* y,
                             const float* weights, float* x) = 0;
  virtual bool backward_weights(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* x,
                                const void* y, float alpha, float beta, float* weight_gradient) = 0;
  // The library, its version and the instruction set its kernels use here (e.g.
  // "oneDNN 2.6.3, ISA avx512_core_bf16"): what bounds a bf16 convolution's speed on
  // a CPU is whether the ISA has AMX tiles or only AVX-512 bf16 dot products.
  virtual std::string description() const = 0;
  // True where this library's own kernel for the call is measured slower than
  // im2col + the backend's GEMM (kernels/dnnl_convolution_routes.h): models/conv_ops.h
  // then takes im2col on ConvolutionPath::library. A pure function of its arguments
  // and the machine, so a run's route, and with it its bits, never depends on timing.
  virtual bool prefers_gemm(const ConvolutionGeometry& /*geometry*/, GemmPrecision /*precision*/,
                            ConvolutionDirection /*direction*/) const {
    return false;
  }
  // True where this library's kernels for the geometry (its layouts aside) read and
  // write x and y channels-last (NHWC) themselves: a caller that holds them so
  // (models/conv_hopfield.cpp: the pre-pooling tensor, the feedback before its
  // transpose into the NCHW state's layout) saves the library's transposing reorders
  // around every call. A pure function of its arguments and the machine.
  virtual bool prefers_channels_last(const ConvolutionGeometry& /*geometry*/, GemmPrecision /*precision*/) {
    return false;
  }
  // True where the library has a primitive for the call with the operands its
  // geometry hands over in bf16 (ConvolutionGeometry::x_type, y_type); the calls
  // return false for them elsewhere. A pure function of its arguments and the machine.
  virtual bool takes_bf16_operands(const ConvolutionGeometry& /*geometry*/, GemmPrecision /*precision*/,
                                   ConvolutionDirection /*direction*/) {
    return false;
  }
};

// What a library's plan depends on: the geometry (shape, window, the layouts'
// strides and the operands' types), the precision and the direction.
using ConvolutionPlanKey = std::array<std::int64_t, 20>;

inline ConvolutionPlanKey convolution_plan_key(const ConvolutionGeometry& g, GemmPrecision precision,
                                               ConvolutionDirection direction) {
  const SlidingWindow& s = g.window;
  const PlaneLayout &in = g.input_layout, &out = g.output_layout;
  return {g.batch, g.in_channels, g.out_channels, s.in_h, s.in_w, s.kernel, s.stride, s.padding,
          in.sample_stride, in.channel_stride, in.channel_step, in.position_stride,
          out.sample_stride, out.channel_stride, out.channel_step, out.position_stride,
          static_cast<std::int64_t>(g.x_type), static_cast<std::int64_t>(g.y_type),
          static_cast<std::int64_t>(precision), static_cast<std::int64_t>(direction)};
}

}  // namespace eqprop
