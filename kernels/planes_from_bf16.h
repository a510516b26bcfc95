// out = alpha * in + beta * out, from bf16 values (kernels/bf16.h) in one layout into
// fp32 in another: how a library convolution that writes bf16 hands its result back
// in the caller's fp32 tensor. cuDNN's legacy API has no bf16 convolution with an
// fp32 output (its bf16 configuration reads and writes bf16, accumulating in fp32),
// so kernels/cudnn_convolution.cu lets it write a channels-last bf16 copy and
// converts that here, scaled and accumulated as the library call's contract asks
// (the weight gradient's alpha and beta). ChannelsLastBf16Op is the other direction.
// beta = 0 never reads out (it may hold anything, NaN included), as in BLAS.
// A copy per element: bit-exact on every backend.
#pragma once

#include <cstdint>

#include "kernels/bf16.h"
#include "kernels/determinism.h"
#include "kernels/hostdevice.h"
#include "kernels/plane_layout.h"

namespace eqprop {

struct PlanesFromBf16Op {
  static constexpr Determinism determinism = Determinism::bit_exact;
  const std::uint16_t* in;  // (batch, channels, plane_size) in in_layout, bf16 bits
  float* out;               // (batch, channels, plane_size) in out_layout
  PlaneLayout in_layout;
  PlaneLayout out_layout;
  std::int32_t channels;
  std::int32_t plane_size;  // height * width
  float alpha;
  float beta;

  EQ_HD void element(std::int32_t b, std::int32_t c, std::int32_t p) const {
    const float value = alpha * bf16_value(in[in_layout.at(b, c, p, plane_size)]);
    float& target = out[out_layout.at(b, c, p, plane_size)];
    target = beta == 0.0f ? value : value + beta * target;
  }

  // Index i in logical (b, c, p) order, as PlaneRelayoutOp.
  EQ_HD void operator()(std::int64_t i) const {
    const IndexDivision plane = divide_index(i, plane_size);
    const IndexDivision sample = divide_index(plane.quotient, channels);
    element(static_cast<std::int32_t>(sample.quotient), static_cast<std::int32_t>(sample.remainder),
            static_cast<std::int32_t>(plane.remainder));
  }
};

}  // namespace eqprop
