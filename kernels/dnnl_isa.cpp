#include "kernels/dnnl_isa.h"

#ifdef EQPROP_HAVE_DNNL

#include <dnnl.hpp>

namespace eqprop {

std::string dnnl_isa_description() {
  using dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case cpu_isa::sse41: return "sse41 (no bf16 instructions)";
    case cpu_isa::avx: return "avx (no bf16 instructions)";
    case cpu_isa::avx2: return "avx2 (no bf16 instructions)";
    case cpu_isa::avx2_vnni: return "avx2_vnni (no bf16 instructions)";
    case cpu_isa::avx512_core: return "avx512_core (no bf16 instructions)";
    case cpu_isa::avx512_core_vnni: return "avx512_core_vnni (no bf16 instructions)";
    case cpu_isa::avx512_core_bf16: return "avx512_core_bf16 (AVX-512 bf16 dot products, no AMX)";
    case cpu_isa::avx512_core_amx: return "avx512_core_amx (AMX tiles)";
    default: return "other";
  }
}

bool dnnl_has_bf16_instructions() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

DnnlKernels dnnl_kernels() {
  using dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case cpu_isa::avx2:
    case cpu_isa::avx2_vnni: return DnnlKernels::avx2;
    case cpu_isa::avx512_core:
    case cpu_isa::avx512_core_vnni:
    case cpu_isa::avx512_core_bf16: return DnnlKernels::avx512_core;
    case cpu_isa::avx512_core_amx: return DnnlKernels::avx512_core_amx;
    default: return DnnlKernels::other;
  }
}

bool built_with_dnnl() { return true; }

}  // namespace eqprop

#else

namespace eqprop {

std::string dnnl_isa_description() { return "none (built without oneDNN)"; }
bool dnnl_has_bf16_instructions() { return false; }
DnnlKernels dnnl_kernels() { return DnnlKernels::other; }
bool built_with_dnnl() { return false; }

}  // namespace eqprop

#endif
