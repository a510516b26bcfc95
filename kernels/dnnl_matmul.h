// The CPU backend's bf16 GEMMs (training.gemm_precision = bf16): oneDNN matmul with
// bf16 operands, fp32 accumulation and fp32 results, on AMX / AVX512-BF16 where the
// CPU has them, so that bf16 is a speed setting on the CPU and not only the
// emulation of kernels/gemm_precision.h (inputs rounded in a copy, then the fp32
// GEMM). Both round the operands to nearest-even bf16 and accumulate in fp32, so
// they differ only in the order of the sums.
//
// C = alpha op(A) op(B) + beta C on row-major operands with leading dimensions, as
// Backend::gemm. The operands are converted into bf16 staging buffers by oneDNN
// reorders (any stride, one pass each); alpha is the primitive's output scale and
// beta its sum post-op. Primitives, reorders and buffers are made once per shape and
// kept (per calling thread: the backend's row slices call GEMMs concurrently). Built
// only with EQPROP_HAVE_DNNL.
//
// Staging layouts, measured with oneDNN 2.6.3 on AMX (an Intel Xeon that reports
// family 6 model 167, one thread) in the CIFAR-10 step's routed last layer (A = the
// 512 x 4608 weights, transposed for the feedback; ONEDNN_VERBOSE): a transposed
// operand staged untransposed costs a gathering reorder of 2.96 ms, staged in its
// own orientation a 0.87 ms conversion and 0.64 ms more in the matmul (1.21 against
// 0.57 ms), so operands keep their orientation; a constant A (Backend::
// gemm_constant_a) is staged untransposed, since its reorder runs once per version.
// (AVX-512 bf16 without AMX was not measured; it stages as AMX does.)
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/backend.h"

namespace eqprop {

class Bf16Gemm {
 public:
  virtual ~Bf16Gemm() = default;
  // False (nothing computed) where oneDNN has no bf16 matmul for the call. A nonzero
  // a_version is Backend::gemm_constant_a's promise: a's conversion is reused while
  // the address and the version are those it was made from.
  virtual bool gemm(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha, const float* a,
                    int lda, std::uint64_t a_version, const float* b, int ldb, float beta, float* c, int ldc) = 0;
};

// Null where the build has no oneDNN or the CPU no bf16 instructions
// (kernels/dnnl_isa.h): the backend then emulates bf16.
std::unique_ptr<Bf16Gemm> make_dnnl_bf16_gemm();

}  // namespace eqprop
