// The CUDA backend's library convolutions (Backend::convolution_*): cuDNN's legacy
// API (cudnnConvolutionForward / BackwardData / BackwardFilter) on the backend's
// compute stream. fp32 runs with CUDNN_FMA_MATH (no TF32: fp32 means fp32, as in
// cuBLAS here), tf32 with the tensor-op math; bf16 has no cuDNN path without bf16
// copies of the operands, so it reports "unsupported" and conv_ops runs im2col +
// the bf16 cuBLAS GEMMs. The tensors stay in the caller's layout, given to cuDNN as
// strides (NCHW, or the channel-major y of the pooled model), so nothing is
// reordered. Per geometry, precision and direction the descriptors, the algorithm
// (cuDNN's heuristic, asked once) and the workspace size are made once and cached;
// the workspace grows to the largest and is kept.
// Built only with EQPROP_HAVE_CUDNN (CUDA backend with cuDNN found).
#pragma once

#include <memory>

#include "kernels/convolution_library.h"

namespace eqprop {

// cuda_stream: the backend's compute stream, a cudaStream_t kept out of this header.
std::unique_ptr<ConvolutionLibrary> make_cudnn_convolutions(void* cuda_stream);

}  // namespace eqprop
