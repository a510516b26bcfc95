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

#include "kernels/backend.h"

namespace eqprop {

class CudnnConvolutions {
 public:
  explicit CudnnConvolutions(void* cuda_stream);  // cudaStream_t, kept out of this header
  ~CudnnConvolutions();
  CudnnConvolutions(const CudnnConvolutions&) = delete;
  CudnnConvolutions& operator=(const CudnnConvolutions&) = delete;

  bool forward(const ConvolutionGeometry& geometry, GemmPrecision precision, const float* x, const float* weights,
               float* y);
  bool backward_data(const ConvolutionGeometry& geometry, GemmPrecision precision, const float* y,
                     const float* weights, float* x);
  bool backward_weights(const ConvolutionGeometry& geometry, GemmPrecision precision, const float* x,
                        const float* y, float alpha, float beta, float* weight_gradient);

 private:
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace eqprop
