#include "models/conv_ops.h"

#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/error.h"
#include "kernels/im2col.h"
#include "kernels/max_pool.h"

namespace eqprop {
namespace {

constexpr std::int64_t kMaxGemmDimension = std::numeric_limits<int>::max();

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

// A layout left at its default (no strides) means NCHW.
PlaneLayout resolve(const PlaneLayout& layout, int channels) {
  return layout == PlaneLayout{} ? nchw_layout(channels) : layout;
}

// True if the elements of `layout` are distinct and the tensor is one of the two
// plane orders (possibly a slice of a larger one: samples nested in channels or
// channels nested in samples) or channels-last (each sample's positions of
// `channels` side-by-side values, samples at least a sample apart).
bool layout_fits(const PlaneLayout& layout, int batch, int channels) {
  if (!layout.planar())
    return layout.channels_last(channels) && (batch == 1 || layout.sample_stride >= channels);
  if (layout.sample_stride < 0 || layout.channel_stride < 0) return false;
  if (batch > 1 && layout.sample_stride < 1) return false;
  if (channels > 1 && layout.channel_stride < 1) return false;
  if (batch == 1 || channels == 1) return true;
  return std::int64_t(layout.sample_stride) >= std::int64_t(channels) * layout.channel_stride ||
         std::int64_t(layout.channel_stride) >= std::int64_t(batch) * layout.sample_stride;
}

constexpr const char* kLayoutHelp =
    " channels: its planes overlap, or it is none of NCHW, CNHW and NHWC (kernels/plane_layout.h)";

std::string layout_text(const PlaneLayout& layout) {
  return "{sample_stride " + std::to_string(layout.sample_stride) + ", channel_stride " +
         std::to_string(layout.channel_stride) + ", channel_step " + std::to_string(layout.channel_step) +
         ", position_stride " + std::to_string(layout.position_stride) + "}";
}

void check_window(const char* what, int in_h, int in_w, int kernel, int stride, int padding) {
  const std::string name(what);
  require(kernel >= 1, name + ": kernel " + std::to_string(kernel) + " must be >= 1");
  require(stride >= 1, name + ": stride " + std::to_string(stride) + " must be >= 1");
  require(padding >= 0, name + ": padding " + std::to_string(padding) + " must be >= 0");
  require(in_h >= 1 && in_w >= 1,
          name + ": input " + std::to_string(in_h) + "x" + std::to_string(in_w) + " must be at least 1x1");
  require(in_h + 2 * padding >= kernel && in_w + 2 * padding >= kernel,
          name + ": kernel " + std::to_string(kernel) + " is larger than the padded input " +
              std::to_string(in_h + 2 * padding) + "x" + std::to_string(in_w + 2 * padding));
}

// y's (Co, NP) matrix view: y itself when GEMM-shaped, else y reordered into the
// channel_major workspace. Returns the view and its row stride.
const float* channel_major_view(Backend& backend, const ConvShape& shape, const float* y,
                                const ConvWorkspace& workspace, std::int64_t& row_stride) {
  if (shape.output_is_gemm_shaped()) {
    row_stride = shape.output_row_stride();
    return y;
  }
  require(workspace.channel_major != nullptr, "conv: an NCHW y with batch > 1 needs workspace.channel_major");
  const std::int32_t plane = shape.out_h() * shape.out_w();
  backend.run(PlaneRelayoutOp{y, workspace.channel_major, nullptr, shape.output_planes(), cnhw_layout(shape.batch),
                              shape.out_channels, plane, false},
              shape.output_size());
  row_stride = shape.positions();
  return workspace.channel_major;
}

// "no library convolution for this shape in <precision><operands> (<library>)",
// the end of the DeviceError of a library call that did not run.
std::string no_library_call(Backend& backend, const std::string& operands) {
  const std::string library = backend.convolution_library_description();
  return std::string("no library convolution for this shape in ") + gemm_precision_name(backend.gemm_precision()) +
         operands + (library.empty() ? std::string(" (no convolution library in this build)") : " (" + library + ")");
}

// A library call's answer: true if it ran; false (run im2col) if the backend has no
// primitive for the shape, unless the library path was asked for.
bool library_ran(Backend& backend, bool ran, const char* what) {
  const ConvolutionPath path = backend.convolution_path();
  if (!ran && (path == ConvolutionPath::library || path == ConvolutionPath::library_only))
    throw DeviceError(std::string(what) + ": training.conv_path is " +
                      (path == ConvolutionPath::library ? "library" : "library_only") + " but the backend has " +
                      no_library_call(backend, ""));
  return ran;
}

// The im2col paths and their library calls read fp32 x and y.
void require_fp32_operands(const ConvShape& shape, const char* what) {
  require(shape.x_type == OperandType::f32 && shape.y_type == OperandType::f32,
          std::string(what) + ": takes fp32 x and y; bf16 operands go to the *_library calls (models/conv_ops.h)");
}

// A *_library call's answer: DeviceError unless it ran.
void require_library_ran(Backend& backend, bool ran, const char* what) {
  if (!ran)
    throw DeviceError(std::string(what) + ": the backend has " + no_library_call(backend, " with these operand types"));
}

}  // namespace

ConvolutionGeometry ConvShape::geometry() const {
  return {batch,          in_channels, out_channels, window(), input_planes(), output_planes(), x_type, y_type,
          weights_version};
}

PlaneLayout ConvShape::input_planes() const { return resolve(input_layout, in_channels); }
PlaneLayout ConvShape::output_planes() const { return resolve(output_layout, out_channels); }

bool ConvShape::output_is_gemm_shaped() const {
  return output_planes().planar() && (batch == 1 || output_planes().sample_stride == 1);
}

std::int64_t ConvShape::output_row_stride() const {
  if (out_channels == 1) return positions();
  return std::int64_t(output_planes().channel_stride) * out_h() * out_w();
}

void ConvShape::validate() const {
  require(batch >= 1, "ConvShape: batch " + std::to_string(batch) + " must be >= 1");
  require(in_channels >= 1, "ConvShape: in_channels " + std::to_string(in_channels) + " must be >= 1");
  require(out_channels >= 1, "ConvShape: out_channels " + std::to_string(out_channels) + " must be >= 1");
  check_window("ConvShape", in_h, in_w, kernel, stride, padding);
  require(layout_fits(input_planes(), batch, in_channels),
          "ConvShape: input_layout " + layout_text(input_planes()) + " is no layout of a batch of " +
              std::to_string(batch) + " x " + std::to_string(in_channels) + kLayoutHelp);
  require(layout_fits(output_planes(), batch, out_channels),
          "ConvShape: output_layout " + layout_text(output_planes()) + " is no layout of a batch of " +
              std::to_string(batch) + " x " + std::to_string(out_channels) + kLayoutHelp);
  require(positions() <= kMaxGemmDimension && patch_size() <= kMaxGemmDimension &&
              output_row_stride() <= kMaxGemmDimension && std::int64_t(in_h) * in_w <= kMaxGemmDimension,
          "ConvShape: batch * out_h * out_w = " + std::to_string(positions()) +
              " or in_channels * kernel^2 = " + std::to_string(patch_size()) +
              " exceeds the 32-bit GEMM dimensions; split the batch");
}

ConvScratch::ConvScratch(Backend& backend, const ConvShape& shape)
    : columns_(backend, static_cast<std::size_t>(shape.columns_size())),
      channel_major_(backend, static_cast<std::size_t>(shape.channel_major_size())) {}

bool conv_uses_library(const Backend& backend) {
  const ConvolutionPath path = backend.convolution_path();
  return path == ConvolutionPath::library || path == ConvolutionPath::library_only ||
         (path == ConvolutionPath::automatic && backend.gemm_precision() == GemmPrecision::bf16);
}

bool conv_library_takes(Backend& backend, const ConvShape& shape, ConvolutionDirection direction) {
  if (!conv_uses_library(backend)) return false;
  // Before its window is computed (a stride of 0 would divide by it); so every
  // library call below runs on a validated shape.
  shape.validate();
  return backend.convolution_path() == ConvolutionPath::library_only ||
         !backend.convolution_prefers_gemm(shape.geometry(), direction);
}

bool conv_library_takes_bf16(Backend& backend, const ConvShape& shape, ConvolutionDirection direction) {
  return conv_library_takes(backend, shape, direction) && backend.gemm_precision() == GemmPrecision::bf16 &&
         backend.convolution_takes_bf16_operands(shape.geometry(), direction);
}

void conv2d_forward_library(Backend& backend, const ConvShape& shape, const void* x, const float* weights, float* y) {
  shape.validate();
  require_library_ran(backend, backend.convolution_forward(shape.geometry(), x, weights, y), "conv2d_forward_library");
}

void conv2d_transpose_library(Backend& backend, const ConvShape& shape, const void* y, const float* weights,
                              float* x) {
  shape.validate();
  require_library_ran(backend, backend.convolution_backward_data(shape.geometry(), y, weights, x),
                      "conv2d_transpose_library");
}

void conv2d_weight_gradient_library(Backend& backend, const ConvShape& shape, const void* x, const void* y,
                                    float alpha, float beta, float* weight_gradient) {
  shape.validate();
  require_library_ran(backend,
                      backend.convolution_backward_weights(shape.geometry(), x, y, alpha, beta, weight_gradient),
                      "conv2d_weight_gradient_library");
}

void conv2d_im2col(Backend& backend, const ConvShape& shape, const float* x, float* columns) {
  shape.validate();
  require_fp32_operands(shape, "conv2d_im2col");
  require(columns != nullptr, "conv2d_im2col: no columns workspace");
  backend.run(Im2colOp{x, columns, shape.input_planes(), shape.window(), shape.in_channels,
                       static_cast<std::int32_t>(shape.positions())},
              shape.columns_size());
}

void conv2d_forward(Backend& backend, const ConvShape& shape, const float* x, const float* weights,
                    const float* bias, float* y, const ConvWorkspace& workspace, bool accumulate) {
  require_fp32_operands(shape, "conv2d_forward");
  if (!accumulate && conv_library_takes(backend, shape, ConvolutionDirection::forward)) {
    if (library_ran(backend, backend.convolution_forward(shape.geometry(), x, weights, y), "conv2d_forward")) {
      if (bias)
        backend.run(PlaneRelayoutOp{y, y, bias, shape.output_planes(), shape.output_planes(), shape.out_channels,
                                    shape.out_h() * shape.out_w(), false},
                    shape.output_size());
      return;
    }
  }
  conv2d_im2col(backend, shape, x, workspace.columns);
  conv2d_forward_columns(backend, shape, workspace.columns, weights, bias, y, workspace, accumulate);
}

void conv2d_forward_columns(Backend& backend, const ConvShape& shape, const float* columns, const float* weights,
                            const float* bias, float* y, const ConvWorkspace& workspace, bool accumulate) {
  shape.validate();
  require(columns != nullptr, "conv2d_forward: no column matrix");
  const int co = shape.out_channels, ckk = static_cast<int>(shape.patch_size()),
            np = static_cast<int>(shape.positions());
  const std::int32_t plane = shape.out_h() * shape.out_w();
  if (shape.output_is_gemm_shaped()) {
    // y (Co, NP) (+)= W (Co, CKK) . columns (CKK, NP), straight into y; bias in place.
    backend.gemm_constant_a(Transpose::no, Transpose::no, co, np, ckk, 1.0f, weights, ckk, shape.weights_version,
                            columns, np, accumulate ? 1.0f : 0.0f, y, static_cast<int>(shape.output_row_stride()));
    if (bias)
      backend.run(PlaneRelayoutOp{y, y, bias, shape.output_planes(), shape.output_planes(), co, plane, false},
                  shape.output_size());
    return;
  }
  require(workspace.channel_major != nullptr, "conv2d_forward: an NCHW y with batch > 1 needs workspace.channel_major");
  // channel_major (Co, NP) = W . columns, then y (N, Co, OH, OW) (+)= channel_major + bias.
  backend.gemm_constant_a(Transpose::no, Transpose::no, co, np, ckk, 1.0f, weights, ckk, shape.weights_version,
                          columns, np, 0.0f, workspace.channel_major, np);
  backend.run(PlaneRelayoutOp{workspace.channel_major, y, bias, cnhw_layout(shape.batch), shape.output_planes(), co,
                              plane, accumulate},
              shape.output_size());
}

void conv2d_transpose(Backend& backend, const ConvShape& shape, const float* y, const float* weights, float* x,
                      const ConvWorkspace& workspace, bool accumulate) {
  shape.validate();
  require_fp32_operands(shape, "conv2d_transpose");
  if (!accumulate && conv_library_takes(backend, shape, ConvolutionDirection::backward_data) &&
      library_ran(backend, backend.convolution_backward_data(shape.geometry(), y, weights, x),
                  "conv2d_transpose"))
    return;
  require(workspace.columns != nullptr, "conv2d_transpose: no columns workspace");
  const int co = shape.out_channels, ckk = static_cast<int>(shape.patch_size()),
            np = static_cast<int>(shape.positions());
  std::int64_t row_stride = 0;
  const float* y_rows = channel_major_view(backend, shape, y, workspace, row_stride);
  // columns (CKK, NP) = W^T (CKK, Co) . y (Co, NP), then folded back onto x.
  backend.gemm_constant_a(Transpose::yes, Transpose::no, ckk, np, co, 1.0f, weights, ckk, shape.weights_version,
                          y_rows, static_cast<int>(row_stride), 0.0f, workspace.columns, np);
  backend.run(Col2imOp{workspace.columns, x, shape.input_planes(), shape.window(), shape.in_channels, np, accumulate},
              shape.input_size());
}

void conv2d_weight_gradient(Backend& backend, const ConvShape& shape, const float* x, const float* y, float alpha,
                            float beta, float* weight_gradient, const ConvWorkspace& workspace) {
  require_fp32_operands(shape, "conv2d_weight_gradient");
  if (conv_library_takes(backend, shape, ConvolutionDirection::backward_weights)) {
    if (library_ran(backend,
                    backend.convolution_backward_weights(shape.geometry(), x, y, alpha, beta, weight_gradient),
                    "conv2d_weight_gradient"))
      return;
  }
  conv2d_im2col(backend, shape, x, workspace.columns);
  conv2d_weight_gradient_columns(backend, shape, workspace.columns, y, alpha, beta, weight_gradient, workspace);
}

void conv2d_weight_gradient_columns(Backend& backend, const ConvShape& shape, const float* columns, const float* y,
                                    float alpha, float beta, float* weight_gradient,
                                    const ConvWorkspace& workspace) {
  shape.validate();
  require_fp32_operands(shape, "conv2d_weight_gradient_columns");
  require(columns != nullptr, "conv2d_weight_gradient: no column matrix");
  const int co = shape.out_channels, ckk = static_cast<int>(shape.patch_size()),
            np = static_cast<int>(shape.positions());
  std::int64_t row_stride = 0;
  const float* y_rows = channel_major_view(backend, shape, y, workspace, row_stride);
  // g (Co, CKK) = alpha y (Co, NP) . columns^T (NP, CKK) + beta g: the sum over the
  // batch and the positions is the GEMM's k.
  backend.gemm(Transpose::no, Transpose::yes, co, ckk, np, alpha, y_rows, static_cast<int>(row_stride), columns, np,
               beta, weight_gradient, ckk);
}

PlaneLayout PoolShape::input_planes() const { return resolve(input_layout, channels); }
PlaneLayout PoolShape::output_planes() const { return resolve(output_layout, channels); }

void PoolShape::validate() const {
  require(batch >= 1, "PoolShape: batch " + std::to_string(batch) + " must be >= 1");
  require(channels >= 1, "PoolShape: channels " + std::to_string(channels) + " must be >= 1");
  check_window("PoolShape", in_h, in_w, kernel, stride, padding);
  require(2 * padding <= kernel, "PoolShape: padding " + std::to_string(padding) + " must be at most kernel / 2 (" +
                                     std::to_string(kernel) + " / 2), so that every window holds an input");
  require(std::int64_t(in_h) * in_w <= kMaxGemmDimension, "PoolShape: input plane too large for 32-bit indices");
  require(layout_fits(input_planes(), batch, channels),
          "PoolShape: input_layout " + layout_text(input_planes()) + " is no layout of a batch of " +
              std::to_string(batch) + " x " + std::to_string(channels) + kLayoutHelp);
  require(layout_fits(output_planes(), batch, channels),
          "PoolShape: output_layout " + layout_text(output_planes()) + " is no layout of a batch of " +
              std::to_string(batch) + " x " + std::to_string(channels) + kLayoutHelp);
}

void max_pool2d(Backend& backend, const PoolShape& shape, const float* x, float* y, std::int32_t* argmax) {
  shape.validate();
  backend.run(MaxPoolOp{x, y, argmax, shape.input_planes(), shape.output_planes(), shape.window(), shape.channels},
              shape.output_size());
}

void max_pool2d_select(Backend& backend, const PoolShape& shape, const float* x, const std::int32_t* argmax, float* y) {
  shape.validate();
  backend.run(MaxPoolSelectOp{x, argmax, y, shape.input_planes(), shape.output_planes(), shape.window(), shape.channels},
              shape.output_size());
}

void max_unpool2d(Backend& backend, const PoolShape& shape, const float* y, const std::int32_t* argmax, float* x,
                  bool accumulate) {
  shape.validate();
  backend.run(MaxUnpoolOp{y, argmax, x, shape.input_planes(), shape.output_planes(), shape.window(), shape.channels,
                          accumulate},
              shape.input_size());
}

void max_unpool2d_operand(Backend& backend, const PoolShape& shape, const float* y, const std::int32_t* argmax,
                          const float* subtrahend, float* x, std::uint16_t* x_bf16) {
  shape.validate();
  backend.run(MaxUnpoolOp{y, argmax, x, shape.input_planes(), shape.output_planes(), shape.window(), shape.channels,
                          false, subtrahend, x_bf16},
              shape.input_size());
}

void avg_pool2d(Backend& backend, const PoolShape& shape, const float* x, float* y) {
  shape.validate();
  backend.run(AvgPoolOp{x, y, shape.input_planes(), shape.output_planes(), shape.window(), shape.channels},
              shape.output_size());
}

void avg_unpool2d(Backend& backend, const PoolShape& shape, const float* y, float* x, bool accumulate) {
  shape.validate();
  backend.run(
      AvgUnpoolOp{y, x, shape.input_planes(), shape.output_planes(), shape.window(), shape.channels, accumulate},
      shape.input_size());
}

}  // namespace eqprop
