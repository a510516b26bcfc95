// The CPU backend's library convolutions (Backend::convolution_*): oneDNN
// primitives, in fp32 or, for GemmPrecision::bf16, bf16 operands with fp32
// accumulation and fp32 results (AMX / AVX512-BF16 where the CPU has them).
//
// Layouts: the callers' tensors stay NCHW (or any PlaneLayout, given to oneDNN as
// strides); the primitives are created with format_tag::any, so oneDNN picks its
// blocked / NHWC layouts, and each call reorders its activations into those
// layouts and the result back (cheap next to the convolution: one pass over each
// tensor), unless the caller hands an input over as the primitive reads it (NHWC,
// and bf16 for a bf16 call: ConvolutionGeometry::x_type / y_type). The weights' reorder is kept between calls and rerun only when their
// values change (once per training step, not once per relaxation step).
// Primitives, reorders and the staging buffers are built once per (geometry,
// precision, direction) and cached; a call allocates nothing after the first.
// Routing (ConvolutionLibrary::prefers_gemm): kernels/dnnl_convolution_routes.h.
// Built only with EQPROP_HAVE_DNNL (CMake option EQPROP_ENABLE_DNNL).
#pragma once

#include <memory>

#include "kernels/convolution_library.h"

namespace eqprop {

// Backend::convolution_*'s contract: false (nothing computed) where oneDNN has no
// primitive for the geometry or the precision (tf32 has none here).
std::unique_ptr<ConvolutionLibrary> make_dnnl_convolutions();

}  // namespace eqprop
