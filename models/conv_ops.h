// The convolution and pooling building blocks of a convolutional Hopfield network
// (DESIGN.md §1; Laborieux et al. 2021, Scellier et al. 2023), on a Backend:
// im2col / col2im ops around Backend::gemm (the layouts and GEMM shapes are
// explained in kernels/im2col.h) and the pooling ops of kernels/max_pool.h.
//
// For a layer s_{l+1} coupled to s_l by a KxK convolution W (and bias b), with the
// energy term -rho(s_{l+1}) . conv(rho(s_l), W):
//   drive of s_{l+1}  = conv2d_forward(rho(s_l), W, b)
//   feedback to s_l   = conv2d_transpose(rho(s_{l+1}), W)   (the adjoint of the linear part)
//   EP update of W    = conv2d_weight_gradient(rho(s_l), rho(s_{l+1})) at the two phase
//                       states with alpha = -c, beta = 0, then alpha = +c, beta = 1,
//                       c = 1 / ((beta_a - beta_b) * batch), as DenseHopfield::ep_gradient
//                       does for a dense W (dE/dW = -the correlation).
// Pooling between layers composes the same way (max_pool2d with its argmax on the
// way up, max_unpool2d through that argmax on the way down).
//
// Layouts: x, y default to NCHW (the public layout). Either tensor may instead be
// any PlaneLayout (kernels/plane_layout.h), e.g. channel-major CNHW, or a slice of
// samples of a larger tensor (base pointer offset, strides of the whole). A
// channel-major y (or any y of batch 1) enters and leaves the GEMMs directly; an
// NCHW y with batch > 1 costs one reordering pass through the `channel_major`
// workspace (a coalesced copy of whole planes, fused with the bias add).
//
// Workspaces are the caller's (ConvWorkspace, or a ConvScratch that owns them), so
// the hot path allocates nothing. Calls on disjoint batch slices with disjoint
// workspaces may run concurrently (Backend::parallel_over_rows).
//
// Determinism: im2col, col2im, the reordering and all pooling ops are bit-exact on
// every backend; the GEMMs are exact up to the BLAS's summation order.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/plane_layout.h"
#include "kernels/sliding_window.h"

namespace eqprop {

// A 2-D convolution of a batch: x (batch, in_channels, in_h, in_w) to
// y (batch, out_channels, out_h, out_w) with weights (out_channels, in_channels,
// kernel, kernel) (PyTorch's Conv2d layout) and bias (out_channels). Square kernel,
// the same stride and zero padding along both axes. Made by its aggregate
// initializer: ConvShape{batch, in_channels, in_h, in_w, out_channels, kernel,
// stride, padding} (the layouts then NCHW).
struct ConvShape {
  int batch = 1;
  int in_channels = 1;
  int in_h = 1;
  int in_w = 1;
  int out_channels = 1;
  int kernel = 1;
  int stride = 1;
  int padding = 0;
  // Layouts of x and y (NCHW, CNHW or NHWC: kernels/plane_layout.h); left at the
  // default PlaneLayout{}, NCHW of this shape.
  PlaneLayout input_layout{};
  PlaneLayout output_layout{};
  // ConvolutionGeometry::weights_version (kernels/convolution_library.h): nonzero
  // where the caller promises that the weights at the same address are unchanged
  // since the last call with this version.
  std::uint64_t weights_version = 0;
  // How the caller holds x and y where a call reads them (ConvolutionGeometry):
  // bf16 only for the *_library calls below; the others take fp32 and refuse bf16.
  OperandType x_type = OperandType::f32;
  OperandType y_type = OperandType::f32;

  int out_h() const { return sliding_output_size(in_h, kernel, stride, padding); }
  int out_w() const { return sliding_output_size(in_w, kernel, stride, padding); }
  SlidingWindow window() const { return make_sliding_window(in_h, in_w, kernel, stride, padding); }
  // The call as a convolution library sees it (Backend::convolution_*).
  ConvolutionGeometry geometry() const;
  PlaneLayout input_planes() const;   // input_layout, or NCHW when left at PlaneLayout{}
  PlaneLayout output_planes() const;  // output_layout, or NCHW when left at PlaneLayout{}

  std::int64_t patch_size() const { return std::int64_t(in_channels) * kernel * kernel; }  // CKK
  std::int64_t positions() const { return std::int64_t(batch) * out_h() * out_w(); }       // NP
  std::int64_t input_size() const { return std::int64_t(batch) * in_channels * in_h * in_w; }
  std::int64_t output_size() const { return std::int64_t(out_channels) * positions(); }
  std::int64_t weight_size() const { return std::int64_t(out_channels) * patch_size(); }
  // Workspace floats: the column matrix (CKK, NP), and y reordered to (Co, NP)
  // (0 when y is already GEMM-shaped: channel-major or batch 1).
  std::int64_t columns_size() const { return patch_size() * positions(); }
  std::int64_t channel_major_size() const { return output_is_gemm_shaped() ? 0 : output_size(); }
  // True when y's (Co, NP) matrix view has a single row stride (output_row_stride()).
  bool output_is_gemm_shaped() const;
  std::int64_t output_row_stride() const;
  // FLOPs of one forward conv (= one transposed conv = one kernel update): 2 Co CKK NP.
  double gemm_flops() const { return 2.0 * double(out_channels) * double(patch_size()) * double(positions()); }

  // Throws std::invalid_argument naming the bad field (sizes < 1, negative padding,
  // a kernel larger than the padded input, a layout whose strides overlap, sizes
  // beyond the 32-bit GEMM dimensions).
  void validate() const;
};

// Scratch arrays of one convolution call; sizes from ConvShape.
struct ConvWorkspace {
  float* columns = nullptr;        // (patch_size, positions)
  float* channel_major = nullptr;  // (out_channels, positions); may be null when channel_major_size() == 0
};

// Owns a ConvWorkspace's arrays on a backend (allocate once, outside the hot path).
class ConvScratch {
 public:
  ConvScratch() = default;
  ConvScratch(Backend& backend, const ConvShape& shape);
  ConvWorkspace workspace() { return {columns_.data(), channel_major_.data()}; }

 private:
  DeviceBuffer<float> columns_;
  DeviceBuffer<float> channel_major_;
};

// Library convolutions (Backend::convolution_*): conv2d_forward, conv2d_transpose
// and conv2d_weight_gradient (not the *_columns variants) call them instead of
// im2col + gemm when this is true (the backend's convolution_path(): library,
// library_only, or automatic with bf16 GEMMs), for a call that does not accumulate
// into its output; where the backend has no primitive for the shape they fall back
// to im2col, except on ConvolutionPath::library and library_only, which throw
// DeviceError.
bool conv_uses_library(const Backend& backend);
// Whether this call of `shape` goes to the library: conv_uses_library, less the
// calls the library routes to im2col + gemm (Backend::convolution_prefers_gemm,
// kernels/dnnl_convolution_routes.h) unless the path is library_only.
bool conv_library_takes(Backend& backend, const ConvShape& shape, ConvolutionDirection direction);

// Whether this call of `shape`, with the operand types it names, goes to the
// library, which takes them (Backend::convolution_takes_bf16_operands): a caller
// that produces x or y can then write them in bf16 (kernels/bf16.h) for the
// *_library calls below, which saves the library its own conversion pass.
bool conv_library_takes_bf16(Backend& backend, const ConvShape& shape, ConvolutionDirection direction);

// conv2d_forward, conv2d_transpose and conv2d_weight_gradient on the library alone,
// with x and y, where read, of shape.x_type / y_type. No bias, no accumulation and
// no im2col path to fall back on: DeviceError where the library does not run the
// call (ask conv_library_takes_bf16 first for bf16 operands).
void conv2d_forward_library(Backend& backend, const ConvShape& shape, const void* x, const float* weights, float* y);
void conv2d_transpose_library(Backend& backend, const ConvShape& shape, const void* y, const float* weights,
                              float* x);
void conv2d_weight_gradient_library(Backend& backend, const ConvShape& shape, const void* x, const void* y,
                                    float alpha, float beta, float* weight_gradient);

// columns (patch_size, positions) = im2col(x).
void conv2d_im2col(Backend& backend, const ConvShape& shape, const float* x, float* columns);

// y = conv(x, weights) + bias, or y += that when accumulating. bias may be null.
//   x (batch, in_channels, in_h, in_w), weights (out_channels, patch_size),
//   bias (out_channels), y (batch, out_channels, out_h, out_w); uses workspace.columns
//   and, for an NCHW y with batch > 1, workspace.channel_major.
void conv2d_forward(Backend& backend, const ConvShape& shape, const float* x, const float* weights,
                    const float* bias, float* y, const ConvWorkspace& workspace, bool accumulate = false);
// The same from x's column matrix (conv2d_im2col), e.g. cached for a clamped input.
void conv2d_forward_columns(Backend& backend, const ConvShape& shape, const float* columns, const float* weights,
                            const float* bias, float* y, const ConvWorkspace& workspace, bool accumulate = false);

// x = conv_T(y, weights), or x += that: the adjoint of conv2d_forward's linear part,
// <conv(x), y> = <x, conv_T(y)>; it carries the layer above's state back as a field
// on the layer below. y (batch, out_channels, out_h, out_w), x (batch, in_channels,
// in_h, in_w); uses workspace.columns and, for an NCHW y with batch > 1,
// workspace.channel_major.
void conv2d_transpose(Backend& backend, const ConvShape& shape, const float* y, const float* weights, float* x,
                      const ConvWorkspace& workspace, bool accumulate = false);

// weight_gradient = alpha * sum_b corr(x_b, y_b) + beta * weight_gradient, i.e.
//   g[co, c, kh, kw] = alpha * sum_{b, oh, ow} y[b, co, oh, ow] x[b, c, oh*S-P+kh, ow*S-P+kw]
// (+ beta g): dE/dW of the coupling -y . conv(x, W) up to the sign, summed over the
// batch, one GEMM. weight_gradient (out_channels, patch_size).
void conv2d_weight_gradient(Backend& backend, const ConvShape& shape, const float* x, const float* y, float alpha,
                            float beta, float* weight_gradient, const ConvWorkspace& workspace);
// The same from x's column matrix (conv2d_im2col).
void conv2d_weight_gradient_columns(Backend& backend, const ConvShape& shape, const float* columns, const float* y,
                                    float alpha, float beta, float* weight_gradient,
                                    const ConvWorkspace& workspace);

// Pooling of x (batch, channels, in_h, in_w) into y (batch, channels, out_h, out_w),
// KxK windows (default 2x2, stride 2), padding at most kernel / 2.
struct PoolShape {
  int batch = 1;
  int channels = 1;
  int in_h = 1;
  int in_w = 1;
  int kernel = 2;
  int stride = 2;
  int padding = 0;
  PlaneLayout input_layout{};   // of x; {0, 0}: NCHW
  PlaneLayout output_layout{};  // of y and the argmax; {0, 0}: NCHW

  int out_h() const { return sliding_output_size(in_h, kernel, stride, padding); }
  int out_w() const { return sliding_output_size(in_w, kernel, stride, padding); }
  SlidingWindow window() const { return make_sliding_window(in_h, in_w, kernel, stride, padding); }
  PlaneLayout input_planes() const;
  PlaneLayout output_planes() const;
  std::int64_t input_size() const { return std::int64_t(batch) * channels * in_h * in_w; }
  std::int64_t output_size() const { return std::int64_t(batch) * channels * out_h() * out_w(); }
  void validate() const;  // throws std::invalid_argument naming the bad field
};

// y = max over each window of x; argmax (batch, channels, out_h, out_w) = its
// position ih * in_w + iw in the input plane (first maximum in window order).
void max_pool2d(Backend& backend, const PoolShape& shape, const float* x, float* y, std::int32_t* argmax);
// y = x at each window's argmax (max_pool2d's, held fixed): max pooling as the linear
// map of its current argmax.
void max_pool2d_select(Backend& backend, const PoolShape& shape, const float* x, const std::int32_t* argmax, float* y);
// x = unpool(y) through argmax (or x += that): the adjoint of max_pool2d at fixed argmax.
void max_unpool2d(Backend& backend, const PoolShape& shape, const float* y, const std::int32_t* argmax, float* x,
                  bool accumulate = false);
// x = unpool(y) - subtrahend through argmax (subtrahend in x's layout; null: none),
// in fp32 at x, or in bf16 (kernels/bf16.h) at x_bf16 where that is given: the y
// operand of a library convolution in one pass.
void max_unpool2d_operand(Backend& backend, const PoolShape& shape, const float* y, const std::int32_t* argmax,
                          const float* subtrahend, float* x, std::uint16_t* x_bf16 = nullptr);
// y = window mean of x (padding counted as zeros).
void avg_pool2d(Backend& backend, const PoolShape& shape, const float* x, float* y);
// x = the adjoint of avg_pool2d applied to y (or x += that).
void avg_unpool2d(Backend& backend, const PoolShape& shape, const float* y, float* x, bool accumulate = false);

}  // namespace eqprop
