// What oneDNN's CPU kernels run on here: the instruction set it dispatches to
// (dnnl::get_effective_cpu_isa, capped by ONEDNN_MAX_CPU_ISA). It decides whether
// training.gemm_precision = bf16 is a speed setting on this CPU: AMX tiles and
// AVX-512 bf16 dot products (vdpbf16ps) multiply bf16 natively; without them oneDNN
// has no bf16 matmul or convolution worth running (on AVX2 none at all), and the CPU
// backend emulates bf16 by rounding a copy of the operands before the fp32 GEMM.
// Without EQPROP_HAVE_DNNL these say so ("none", false).
#pragma once

#include <string>

namespace eqprop {

// The effective ISA's name, with what it means for bf16, e.g.
// "avx512_core_bf16 (AVX-512 bf16 dot products, no AMX)" or "avx2 (no bf16 instructions)".
std::string dnnl_isa_description();

// True where the effective ISA multiplies bf16 natively (AVX-512 bf16 or AMX).
bool dnnl_has_bf16_instructions();

// The families of kernels oneDNN runs convolutions on here. fp32: its AVX2 kernels
// (avx2, avx2_vnni) or its AVX-512 ones (every avx512_core ISA; AMX tiles and bf16
// dot products serve bf16 only, fp32 stays on jit:avx512_core). avx512_core_amx:
// those AVX-512 kernels for fp32 and AMX tiles for bf16; avx512_core covers the
// AVX-512 ISAs without AMX, with or without bf16 dot products. `other` for older ISAs
// and without oneDNN. kernels/dnnl_convolution_routes.h keys its table on it.
enum class DnnlKernels { other, avx2, avx512_core, avx512_core_amx };
DnnlKernels dnnl_kernels();

// True where this build has oneDNN (CMake option EQPROP_ENABLE_DNNL and the library
// found): the CPU's library convolutions and bf16 matmul.
bool built_with_dnnl();

}  // namespace eqprop
