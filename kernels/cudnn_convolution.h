// The CUDA backend's library convolutions (Backend::convolution_*): cuDNN's legacy
// API (cudnnConvolutionForward / BackwardData / BackwardFilter) on the backend's
// compute stream.
//  - fp32 runs with CUDNN_FMA_MATH (no TF32: fp32 means fp32, as in cuBLAS here),
//    tf32 with the tensor-op math. The tensors stay in the caller's layout, given to
//    cuDNN as strides (NCHW, or the channel-major y of the pooled model), so nothing
//    is reordered.
//  - bf16 runs cuDNN's bf16 configuration, the only one its legacy API has: x, w and
//    y all bf16, products accumulated in fp32, the result rounded to bf16. The
//    operands go in as dense channels-last bf16 (NHWC activations, KRSC filter: the
//    tensor cores' layouts), converted in one pass each (ChannelsLastBf16Op) unless
//    the caller hands them over so (takes_bf16_operands); the result comes back into
//    the caller's fp32 tensor (PlanesFromBf16Op). So a bf16 convolution here rounds
//    once more than oneDNN's on the CPU, which writes fp32: 2^-9 of each result.
//    prefers_channels_last says yes for bf16, so the conv network holds its
//    pre-pooling tensors channels-last and those passes are plain copies.
// Per geometry, precision and direction the descriptors, the algorithm (cuDNN's
// heuristic, asked once) and the workspace size are made once and cached; the
// workspace and the bf16 copies grow to the largest call and are kept. Where the
// heuristic has no supported algorithm the call returns false and conv_ops runs
// im2col + the backend's GEMM.
// Built only with EQPROP_HAVE_CUDNN (CUDA backend with cuDNN found).
#pragma once

#include <memory>

#include "kernels/convolution_library.h"

namespace eqprop {

class Backend;

// backend: the CUDA backend that owns the library (it runs the bf16 conversions and
// allocates their buffers, and outlives the library); cuda_stream: its compute
// stream, a cudaStream_t kept out of this header.
std::unique_ptr<ConvolutionLibrary> make_cudnn_convolutions(Backend& backend, void* cuda_stream);

}  // namespace eqprop
