// The precision of the products inside Backend::gemm. Inputs and outputs stay FP32
// in memory and the sums accumulate in FP32 in every mode; the reduced modes only
// round each input element's mantissa before it is multiplied, as the tensor cores
// do (NVIDIA A100 whitepaper, "TF32"; cuBLAS CUBLAS_COMPUTE_32F_FAST_TF32 and
// CUBLAS_COMPUTE_32F_FAST_16BF):
//   fp32  23 stored mantissa bits, bit-exact with the reference paths (default)
//   tf32  10 bits: unit roundoff u = 2^-11 per input
//   bf16   7 bits: unit roundoff u = 2^-8 per input
// A product then carries a relative error of at most 2u + u^2, so a GEMM entry's
// error is bounded by (2u + u^2) sum_k |a_ik b_kj| plus the FP32 accumulation error;
// for random signs it grows like u sqrt(k).
//
// round_to_precision is what the CPU backend applies to a copy of the inputs to
// emulate the reduced modes (there are no TF32 units on a CPU), so their accuracy
// impact can be measured and tested without a GPU. Round to nearest, ties to even.
// The GPU's own conversion may round ties differently (cvt.rna rounds them away
// from zero); that changes individual products by at most one unit of the reduced
// mantissa, never the bound above. Bit-exact: integer arithmetic on the bits.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/hostdevice.h"

namespace eqprop {

enum class GemmPrecision : std::uint8_t { fp32, tf32, bf16 };

// Stored mantissa bits of the inputs in each mode.
EQ_HD int mantissa_bits(GemmPrecision precision) {
  return precision == GemmPrecision::tf32 ? 10 : precision == GemmPrecision::bf16 ? 7 : 23;
}

inline const char* gemm_precision_name(GemmPrecision precision) {
  return precision == GemmPrecision::tf32 ? "tf32" : precision == GemmPrecision::bf16 ? "bf16" : "fp32";
}

// x with its mantissa rounded to mantissa_bits(precision) bits, to nearest, ties
// to even. NaN and Inf pass unchanged; a value that rounds past the largest finite
// number becomes Inf, as the hardware conversion does.
EQ_HD float round_to_precision(float x, GemmPrecision precision) {
  const int dropped = 23 - mantissa_bits(precision);
  if (dropped == 0) return x;
  std::uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u) return x;  // NaN or Inf
  const std::uint32_t kept_lsb = (bits >> dropped) & 1u;
  // Adding half an ulp of the kept mantissa, minus one unless the kept mantissa is
  // odd, rounds half-way cases to the even neighbour; a carry into the exponent is
  // the correct result (the next binade, or Inf).
  bits += (1u << (dropped - 1)) - 1u + kept_lsb;
  bits &= ~((1u << dropped) - 1u);
  float rounded;
  memcpy(&rounded, &bits, sizeof rounded);
  return rounded;
}

}  // namespace eqprop
