// bf16 storage of fp32 values: a library convolution's operands in bf16, converted
// where an op produces them (kernels/max_pool.h's unpooling, PlaneRelayoutOp) instead
// of by a further pass of the library's own over an fp32 copy.
//
// bf16_bits rounds as the CPU's conversion instruction does (VCVTNEPS2BF16, which
// oneDNN's reorders run on CPUs with AVX512-BF16 or AMX): to nearest, ties to even;
// a denormal input becomes a zero of its sign (the instruction treats denormal
// inputs as zeros); a NaN stays a NaN of its sign (quieted); Inf stays Inf. So an
// operand converted here gives the library the bits its own reorder would have.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/hostdevice.h"

namespace eqprop {

EQ_HD std::uint16_t bf16_bits(float x) {
  std::uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  // Half an ulp of the kept mantissa, minus one unless the kept mantissa is odd:
  // half-way cases go to the even neighbour; a carry into the exponent is correct.
  std::uint32_t result = bits + 0x7fffu + ((bits >> 16) & 1u);
  // Selects on 32-bit lanes, no branches: the row loops that convert 16 values at
  // a time (kernels/max_pool.h, channels_last_bf16.h) stay one vector per 16.
  result = magnitude > 0x7f800000u ? bits | 0x00400000u : result;  // NaN: quieted
  result = magnitude < 0x00800000u ? bits & 0x80000000u : result;  // zero or denormal: a signed zero
  return static_cast<std::uint16_t>(result >> 16);
}

// bf16_bits of 16 values at once, for the CPU row paths: the same selects as
// generic vectors (GCC 12 and clang), inside the AVX-512 row loops a few zmm
// instructions. Where a loop of bf16_bits is simple (ChannelsLastBf16Op's), GCC
// vectorises it as well; in the unpooling's four-corner loop it did not, and that
// unpooling into bf16 took 0.41 ms per call (1.26 with the corners' loops split)
// against 0.33 with this (`OMP_NUM_THREADS=1 eqprop_pool_rows 16 100 nhwc`, the
// 16x16 layer). nvcc parses but never runs the row paths: a plain loop there.
inline void bf16_bits_16(const float* values, std::uint16_t* out) {
#if defined(__CUDACC__)
  for (int i = 0; i < 16; ++i) out[i] = bf16_bits(values[i]);
#else
  using Lanes = std::uint32_t __attribute__((vector_size(64)));
  using Halves = std::uint16_t __attribute__((vector_size(32)));
  Lanes bits;
  memcpy(&bits, values, sizeof bits);
  const Lanes magnitude = bits & 0x7fffffffu;
  const Lanes rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  const Lanes nan = (Lanes)(magnitude > 0x7f800000u), tiny = (Lanes)(magnitude < 0x00800000u);
  Lanes result = (nan & (bits | 0x00400000u)) | (~nan & rounded);
  result = (tiny & (bits & 0x80000000u)) | (~tiny & result);
  const Halves narrowed = __builtin_convertvector(result >> 16, Halves);
  memcpy(out, &narrowed, sizeof narrowed);
#endif
}

EQ_HD float bf16_value(std::uint16_t bf16) {
  const std::uint32_t bits = std::uint32_t(bf16) << 16;
  float x;
  memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace eqprop
