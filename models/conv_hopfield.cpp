#include "models/conv_hopfield.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/axpby.h"
#include "models/parameter_init.h"

namespace eqprop {
namespace {

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

std::string plane_text(const PlaneShape& p) {
  return std::to_string(p.channels) + "x" + std::to_string(p.height) + "x" + std::to_string(p.width);
}

}  // namespace

// ---- shape ----

PlaneShape ConvHopfieldShape::conv_plane(int j) const {
  PlaneShape plane = input;
  for (int k = 0; k < j; ++k) {
    const ConvLayerSpec& c = convs[k];
    plane.channels = c.channels;
    plane.height = sliding_output_size(plane.height, c.kernel, c.stride, c.padding);
    plane.width = sliding_output_size(plane.width, c.kernel, c.stride, c.padding);
    if (pool != PoolKind::none) plane.height /= 2, plane.width /= 2;
  }
  return plane;
}

int ConvHopfieldShape::units(int j) const {
  if (j <= conv_layers()) return conv_plane(j).units();
  return dense[j - conv_layers() - 1];
}

ConvShape ConvHopfieldShape::conv_shape(int k, int rows) const {
  const PlaneShape in = conv_plane(k);
  const ConvLayerSpec& c = convs[k];
  return ConvShape{rows, in.channels, in.height, in.width, c.channels, c.kernel, c.stride, c.padding};
}

PoolShape ConvHopfieldShape::pool_shape(int k, int rows) const {
  const ConvShape conv = conv_shape(k, rows);
  PoolShape shape;
  shape.batch = rows;
  shape.channels = conv.out_channels;
  shape.in_h = conv.out_h();
  shape.in_w = conv.out_w();
  shape.input_layout = cnhw_layout(rows);
  return shape;
}

ConvShape ConvHopfieldShape::skip_shape(int s, int rows) const {
  const PlaneShape in = conv_plane(skips[s].from), out = conv_plane(skips[s].to);
  const int stride = (in.height + out.height - 1) / out.height;  // the smallest that fits plane `to`
  return ConvShape{rows, in.channels, in.height, in.width, out.channels, 1, stride, 0};
}

void ConvHopfieldShape::validate() const {
  require(input.channels >= 1 && input.height >= 1 && input.width >= 1,
          "conv.input_shape " + plane_text(input) + ": every size must be >= 1");
  require(!convs.empty(), "conv.channels: a convolutional network needs at least one conv layer");
  require(!dense.empty(), "model.layers: the conv network needs the output layer after its conv layers");
  PlaneShape plane = input;
  for (int k = 0; k < conv_layers(); ++k) {
    const ConvLayerSpec& c = convs[k];
    const std::string name = "conv layer " + std::to_string(k + 1) + " (input " + plane_text(plane) + ")";
    require(c.channels >= 1, name + ": channels " + std::to_string(c.channels) + " must be >= 1");
    require(c.kernel >= 1 && c.stride >= 1 && c.padding >= 0,
            name + ": kernel and stride must be >= 1 and padding >= 0");
    require(plane.height + 2 * c.padding >= c.kernel && plane.width + 2 * c.padding >= c.kernel,
            name + ": the kernel " + std::to_string(c.kernel) + " is larger than the padded input " +
                std::to_string(plane.height + 2 * c.padding) + "x" + std::to_string(plane.width + 2 * c.padding));
    const int h = sliding_output_size(plane.height, c.kernel, c.stride, c.padding);
    const int w = sliding_output_size(plane.width, c.kernel, c.stride, c.padding);
    if (pool != PoolKind::none)
      // 2x2 windows must tile the plane: a dropped row would be units coupled to
      // nothing above, and the bias would no longer commute with the pooling.
      require(h % 2 == 0 && w % 2 == 0,
              name + ": its output is " + std::to_string(h) + "x" + std::to_string(w) +
                  ", which 2x2 pooling cannot tile; sizes must be even (change the padding or the kernel)");
    plane = {c.channels, pool != PoolKind::none ? h / 2 : h, pool != PoolKind::none ? w / 2 : w};
    conv_shape(k, 1).validate();
  }
  for (int s = 0; s < skip_count(); ++s) {
    const SkipSpec& skip = skips[s];
    const std::string name = "conv.skips[" + std::to_string(s) + "] = [" + std::to_string(skip.from) + ", " +
                             std::to_string(skip.to) + "]";
    require(skip.from >= 0 && skip.to <= conv_layers(),
            name + ": planes are 0 (the input) to " + std::to_string(conv_layers()) + " (the last conv layer's)");
    require(skip.from <= skip.to - 2, name + ": a skip joins planes at least two apart (adjacent ones are "
                                             "already coupled by their conv layer)");
    for (int other = 0; other < s; ++other)
      require(skips[other].from != skip.from || skips[other].to != skip.to, name + ": listed twice");
    const PlaneShape in = conv_plane(skip.from), out = conv_plane(skip.to);
    const ConvShape conv = skip_shape(s, 1);
    require(conv.out_h() == out.height && conv.out_w() == out.width,
            name + ": no 1x1 convolution with one stride maps " + plane_text(in) + " onto " + plane_text(out));
  }
  for (std::size_t i = 0; i < dense.size(); ++i)
    require(dense[i] >= 1, "model.layers[" + std::to_string(i) + "] must be >= 1");
  require(classes() <= kMaxClasses, "model.layers: the output layer has " + std::to_string(classes()) +
                                        " units; at most " + std::to_string(kMaxClasses) + " classes are supported");
}

// ---- construction, parameters ----

ConvHopfield::ConvHopfield(Backend& backend, ConvHopfieldShape shape, int max_batch, std::int64_t workspace_floats)
    : LayeredModel(backend, "ConvHopfield", max_batch), shape_(std::move(shape)) {
  shape_.validate();
  if (max_batch_ < 1) throw std::invalid_argument("ConvHopfield: max_batch must be >= 1");
  LayerLayout layout;
  layout.input_size = shape_.input.units();
  layout.classes = shape_.classes();
  for (int i = 0; i < shape_.state_layers(); ++i) layout.state_units.push_back(shape_.units(i + 1));
  layout.with_momenta = true;  // for cSB
  layout.whole_batch = true;   // each conv GEMM is large: no per-core slices
  layout.activation_max = shape_.activation_max;
  define_layers(std::move(layout));
  parameters_ = make_parameter_like();
  const int states = shape_.state_layers(), convs = shape_.conv_layers();
  std::int64_t widest_columns = 1, widest_output = 1, widest_input = 1;
  int widest_plane = 1, widest_conv_units = 1;
  for (int k = 0; k < convs; ++k) {
    const ConvShape conv = shape_.conv_shape(k, 1);
    widest_columns = std::max(widest_columns, conv.columns_size());
    widest_output = std::max(widest_output, conv.output_size());
    widest_input = std::max(widest_input, conv.input_size());
    widest_plane = std::max(widest_plane, shape_.conv_plane(k + 1).plane());
    widest_conv_units = std::max(widest_conv_units, shape_.units(k + 1));
  }
  for (int s = 0; s < shape_.skip_count(); ++s) {
    const ConvShape conv = shape_.skip_shape(s, 1);
    widest_columns = std::max(widest_columns, conv.columns_size());
    widest_output = std::max(widest_output, conv.output_size());
  }
  chunk_ = static_cast<int>(std::clamp<std::int64_t>(workspace_floats / widest_columns, 1, max_batch_));
  columns_ = DeviceBuffer<float>(backend_, std::size_t(chunk_) * widest_columns);
  conv_out_ = DeviceBuffer<float>(backend_, std::size_t(chunk_) * widest_output);
  operand_bf16_ = DeviceBuffer<std::uint16_t>(backend_, conv_out_.size());
  input_bf16_ = DeviceBuffer<std::uint16_t>(backend_, std::size_t(chunk_) * widest_input);
  feedback_channels_last_ = DeviceBuffer<float>(backend_, std::size_t(chunk_) * widest_input);
  for (int i = 0; i < states; ++i) {
    const std::size_t size = std::size_t(max_batch_) * shape_.units(i + 1);
    drive_.emplace_back(backend_, size);
    feedback_.emplace_back(backend_, size);
  }
  for (int k = 0; k < convs; ++k) {
    const bool pooled = shape_.pool == PoolKind::max;
    argmax_.emplace_back(backend_, pooled ? std::size_t(max_batch_) * shape_.units(k + 1) : 0);
    expanded_bias_.emplace_back(backend_, std::size_t(shape_.units(k + 1)));
  }
  if (shape_.cost == CostKind::cross_entropy) enable_softmax_readout(shape_.classes());
  unit_sums_ = DeviceBuffer<float>(backend_, std::size_t(widest_conv_units));
  ones_ = DeviceBuffer<float>(backend_, std::size_t(widest_plane));
  ones_.copy_from_host(std::vector<float>(ones_.size(), 1.0f));
}

ParameterSet ConvHopfield::make_parameter_like() const {
  ParameterSet set;
  for (int t = 0; t < shape_.weight_tensors(); ++t) {
    std::size_t weights = 1, biases = 1;
    for (std::int64_t d : tensor_shape(t, false)) weights *= static_cast<std::size_t>(d);
    for (std::int64_t d : tensor_shape(t, true)) biases *= static_cast<std::size_t>(d);
    set.weights.emplace_back(backend_, weights);
    set.biases.emplace_back(backend_, biases);
    set.weights.back().zero();
    set.biases.back().zero();
  }
  return set;
}

std::vector<std::int64_t> ConvHopfield::tensor_shape(int l, bool bias) const {
  if (l >= shape_.chain_tensors()) {
    const SkipSpec& skip = shape_.skips[l - shape_.chain_tensors()];
    if (bias) return {0};
    return {shape_.conv_plane(skip.to).channels, shape_.conv_plane(skip.from).channels, 1, 1};
  }
  if (l < shape_.conv_layers()) {
    const ConvLayerSpec& c = shape_.convs[l];
    if (bias) return {c.channels};
    return {c.channels, shape_.conv_plane(l).channels, c.kernel, c.kernel};  // PyTorch's Conv2d layout
  }
  if (bias) return {shape_.units(l + 1)};
  return {shape_.units(l), shape_.units(l + 1)};
}

void ConvHopfield::initialize(std::uint64_t seed, float gain) {
  // U(-a, a), a = gain / sqrt(fan_in): PyTorch's Conv2d / Linear default range
  // (fan_in = C*K*K for a kernel) times a gain, as DenseHopfield.
  for (int t = 0; t < shape_.weight_tensors(); ++t) {
    const std::vector<std::int64_t> dims = tensor_shape(t, false);
    const bool kernel = t < shape_.conv_layers() || t >= shape_.chain_tensors();
    const double fan_in = kernel ? double(dims[1]) * dims[2] * dims[3] : double(dims[0]);
    const float bound = gain / static_cast<float>(std::sqrt(fan_in));
    fill_uniform_parameters(parameters_.weights[t], seed, static_cast<std::uint32_t>(2 * t), bound);
    fill_uniform_parameters(parameters_.biases[t], seed, static_cast<std::uint32_t>(2 * t + 1), bound);
  }
}

const float* ConvHopfield::unit_bias(int i) const {
  return i < shape_.conv_layers() ? expanded_bias_[i].data() : parameters_.biases[i].data();
}

// ---- convolutions over chunks of the batch ----

void ConvHopfield::conv_coupling(int k, const float* below, const float* above, bool keep_argmax) {
  const int out_units = shape_.units(k + 1);
  const std::size_t pre_units = std::size_t(shape_.conv_shape(k, 1).output_size());
  const bool from_reference = from_reference_ && k >= 1;
  float* drive = drive_[k].data();
  for (int begin = 0; begin < batch_; begin += chunk_) {
    const int rows = std::min(chunk_, batch_ - begin);
    const std::size_t out_offset = std::size_t(begin) * out_units;
    const std::size_t pre_offset = std::size_t(begin) * pre_units, pre_count = std::size_t(rows) * pre_units;
    ConvShape conv = call_shape(shape_.conv_shape(k, rows));
    // From the reference: W * (s - r) here, then + W * r before the pooling.
    const float* reference = from_reference ? reference_state_.layers[k - 1].data() : nullptr;
    if (shape_.pool == PoolKind::none) {
      // NCHW in and out; conv_ops reorders through conv_out_.
      conv_forward_of_state(k, conv, begin, below, reference, drive + out_offset);
      if (from_reference) add_reference(drive + out_offset, reference_preactivation_[k].data() + pre_offset, pre_count);
    } else {
      // The convolution writes the pre-pool output into conv_out_ (with_prepool_layout);
      // the pooling reads it there and writes the NCHW drive.
      const PoolShape pool = with_prepool_layout(k, conv);
      conv_forward_of_state(k, conv, begin, below, reference, conv_out_.data());
      if (from_reference) add_reference(conv_out_.data(), reference_preactivation_[k].data() + pre_offset, pre_count);
      if (shape_.pool == PoolKind::max && keep_argmax)
        max_pool2d_select(backend_, pool, conv_out_.data(), argmax_[k].data() + out_offset, drive + out_offset);
      else if (shape_.pool == PoolKind::max)
        max_pool2d(backend_, pool, conv_out_.data(), drive + out_offset, argmax_[k].data() + out_offset);
      else
        avg_pool2d(backend_, pool, conv_out_.data(), drive + out_offset);
    }
    if (above) conv_feedback_rows(k, above, begin, rows);
  }
}

void ConvHopfield::conv_forward_of_state(int k, ConvShape conv, int begin, const float* below,
                                         const float* reference, float* y) {
  const std::size_t offset = std::size_t(begin) * shape_.units(k), count = std::size_t(conv.batch) * shape_.units(k);
  if (!operand_plan(k, conv.batch).bf16_input) {
    const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
    const float* x = reference ? deviation(below, reference, offset, count) : below + offset;
    conv2d_forward(backend_, conv, x, parameters_.weights[k].data(), nullptr, y, workspace);
    return;
  }
  const PlaneLayout nhwc = nhwc_layout(conv.in_channels);
  backend_.run(ChannelsLastBf16Op{below + offset, reference ? reference + offset : nullptr, input_bf16_.data(),
                                  conv.input_planes(), nhwc, conv.in_channels, conv.in_h * conv.in_w},
               std::int64_t(count));
  conv.input_layout = nhwc;
  conv.x_type = OperandType::bf16;
  conv2d_forward_library(backend_, conv, input_bf16_.data(), parameters_.weights[k].data(), y);
}

void ConvHopfield::conv_feedback(int k, const float* above) {
  for (int begin = 0; begin < batch_; begin += chunk_)
    conv_feedback_rows(k, above, begin, std::min(chunk_, batch_ - begin));
}

void ConvHopfield::conv_feedback_rows(int k, const float* above, int begin, int rows) {
  const std::size_t in_offset = std::size_t(begin) * shape_.units(k);
  const std::size_t out_offset = std::size_t(begin) * shape_.units(k + 1);
  const std::size_t pre_units = std::size_t(shape_.conv_shape(k, 1).output_size());
  const std::size_t pre_offset = std::size_t(begin) * pre_units, pre_count = std::size_t(rows) * pre_units;
  const std::size_t feedback_count = std::size_t(rows) * shape_.units(k);
  const float* weights = parameters_.weights[k].data();
  float* feedback = feedback_[k - 1].data() + in_offset;
  ConvShape conv = call_shape(shape_.conv_shape(k, rows));
  const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
  // From the reference: W^T *' (P^T(s) - P^T(r)), then + W^T *' P^T(r).
  const float* reference_feedback = from_reference_ ? reference_feedback_[k - 1].data() + in_offset : nullptr;
  if (shape_.pool == PoolKind::none) {
    const float* y = from_reference_ ? deviation(above, reference_state_.layers[k].data(), out_offset, pre_count)
                                     : above + out_offset;
    conv2d_transpose(backend_, conv, y, weights, feedback, workspace);
    if (from_reference_) add_reference(feedback, reference_feedback, feedback_count);
    return;
  }
  const bool bf16_operand = operand_plan(k, rows).bf16_feedback;
  const PoolShape pool = with_prepool_layout(k, conv);
  // P^T(s_above) in the pre-pool layout (through the argmax of the last forward
  // pass), less P^T(r) from the reference, then W^T *'.
  const float* reference_operand = from_reference_ ? reference_operand_[k].data() + pre_offset : nullptr;
  if (shape_.pool == PoolKind::max && bf16_operand) {
    max_unpool2d_operand(backend_, pool, above + out_offset, argmax_[k].data() + out_offset, reference_operand,
                         nullptr, operand_bf16_.data());
    // The feedback as the library writes it (NHWC), then transposed into NCHW.
    const PlaneLayout state_layout = conv.input_planes(), nhwc = nhwc_layout(conv.in_channels);
    conv.y_type = OperandType::bf16;
    conv.input_layout = nhwc;
    conv2d_transpose_library(backend_, conv, operand_bf16_.data(), weights, feedback_channels_last_.data());
    backend_.run(PlaneRelayoutOp{feedback_channels_last_.data(), feedback, nullptr, nhwc, state_layout,
                                 conv.in_channels, conv.in_h * conv.in_w, false},
                 std::int64_t(feedback_count));
  } else {
    if (shape_.pool == PoolKind::max) {
      max_unpool2d_operand(backend_, pool, above + out_offset, argmax_[k].data() + out_offset, reference_operand,
                           conv_out_.data());
    } else {
      avg_unpool2d(backend_, pool, above + out_offset, conv_out_.data());
      if (reference_operand)
        backend_.run(AxpbyOp{conv_out_.data(), reference_operand, conv_out_.data(), 1.0f, -1.0f},
                     std::int64_t(pre_count));
    }
    conv2d_transpose(backend_, conv, conv_out_.data(), weights, feedback, workspace);
  }
  if (from_reference_) add_reference(feedback, reference_feedback, feedback_count);
}

void ConvHopfield::conv_kernel_gradient(int k, const float* below, const float* above, float alpha, bool overwrite,
                                        float* gradient, bool keep_argmax) {
  const int in_units = shape_.units(k), out_units = shape_.units(k + 1);
  for (int begin = 0; begin < batch_; begin += chunk_) {
    const int rows = std::min(chunk_, batch_ - begin);
    const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
    const float beta = overwrite && begin == 0 ? 0.0f : 1.0f;
    ConvShape conv = call_shape(shape_.conv_shape(k, rows));
    const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
    // The library path takes x itself; im2col's column matrix serves both GEMMs below
    // (the library's routes send the forward and the weights of a layer together).
    const bool library = conv_library_takes(backend_, conv, ConvolutionDirection::backward_weights);
    if (!library) conv2d_im2col(backend_, conv, below + in_offset, columns_.data());
    if (shape_.pool == PoolKind::none) {
      if (library) {
        conv2d_weight_gradient(backend_, conv, below + in_offset, above + out_offset, alpha, beta, gradient,
                               workspace);
      } else {
        conv2d_weight_gradient_columns(backend_, conv, columns_.data(), above + out_offset, alpha, beta, gradient,
                                       workspace);
      }
      continue;
    }
    const bool bf16_operand = operand_plan(k, rows).bf16_gradient;
    const PoolShape pool = with_prepool_layout(k, conv);
    if (shape_.pool == PoolKind::max) {
      std::int32_t* argmax = argmax_[k].data() + out_offset;
      if (k > 0 && !keep_argmax) {
        // The argmax of this state's pooled convolution (the input's is cached);
        // the pooled values land in the drive, which every step recomputes.
        if (library) {
          conv2d_forward(backend_, conv, below + in_offset, parameters_.weights[k].data(), nullptr,
                         conv_out_.data(), workspace);
        } else {
          conv2d_forward_columns(backend_, conv, columns_.data(), parameters_.weights[k].data(), nullptr,
                                 conv_out_.data(), workspace);
        }
        max_pool2d(backend_, pool, conv_out_.data(), drive_[k].data() + out_offset, argmax);
      }
      if (bf16_operand) {
        max_unpool2d_operand(backend_, pool, above + out_offset, argmax, nullptr, nullptr, operand_bf16_.data());
        conv.y_type = OperandType::bf16;
        conv2d_weight_gradient_library(backend_, conv, below + in_offset, operand_bf16_.data(), alpha, beta, gradient);
        continue;
      }
      max_unpool2d(backend_, pool, above + out_offset, argmax, conv_out_.data());
    } else {
      avg_unpool2d(backend_, pool, above + out_offset, conv_out_.data());
    }
    if (library) {
      conv2d_weight_gradient(backend_, conv, below + in_offset, conv_out_.data(), alpha, beta, gradient, workspace);
    } else {
      conv2d_weight_gradient_columns(backend_, conv, columns_.data(), conv_out_.data(), alpha, beta, gradient,
                                     workspace);
    }
  }
}

void ConvHopfield::unpool_through_own_argmax(int k, const float* below, const float* above, int begin, int rows,
                                             float* unpooled) {
  const std::size_t in_offset = std::size_t(begin) * shape_.units(k);
  const std::size_t out_offset = std::size_t(begin) * shape_.units(k + 1);
  ConvShape conv = call_shape(shape_.conv_shape(k, rows));
  const PoolShape pool = with_prepool_layout(k, conv);
  if (shape_.pool == PoolKind::avg) return avg_unpool2d(backend_, pool, above + out_offset, unpooled);
  const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
  // The pooled values land in the drive, which every step recomputes.
  conv2d_forward(backend_, conv, below + in_offset, parameters_.weights[k].data(), nullptr, conv_out_.data(),
                 workspace);
  max_pool2d(backend_, pool, conv_out_.data(), drive_[k].data() + out_offset, argmax_[k].data() + out_offset);
  max_unpool2d(backend_, pool, above + out_offset, argmax_[k].data() + out_offset, unpooled);
}

void ConvHopfield::conv_kernel_gradient_from_difference(int k, const float* below_a, const float* above_a,
                                                        const float* below_b, const float* above_b, float alpha,
                                                        float* gradient) {
  const int in_units = shape_.units(k), out_units = shape_.units(k + 1);
  for (int begin = 0; begin < batch_; begin += chunk_) {
    const int rows = std::min(chunk_, batch_ - begin);
    const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
    const std::size_t out_count = std::size_t(rows) * shape_.conv_shape(k, 1).output_size();
    ConvShape conv = call_shape(shape_.conv_shape(k, rows));
    const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
    // u_a - u_b and u_b: without pooling the NCHW states themselves, else each
    // unpooled into the pre-pool layout through its own argmax.
    const float* unpooled_b = above_b + out_offset;
    float* unpooled_difference = unpooled_b_.data();
    if (shape_.pool == PoolKind::none) {
      backend_.run(AxpbyOp{above_a + out_offset, unpooled_b, unpooled_difference, 1.0f, -1.0f},
                   std::int64_t(out_count));
    } else {
      with_prepool_layout(k, conv);
      unpool_through_own_argmax(k, below_b, above_b, begin, rows, unpooled_b_.data());
      unpool_through_own_argmax(k, below_a, above_a, begin, rows, conv_out_.data());
      unpooled_b = unpooled_b_.data();
      unpooled_difference = conv_out_.data();
      backend_.run(AxpbyOp{conv_out_.data(), unpooled_b, conv_out_.data(), 1.0f, -1.0f}, std::int64_t(out_count));
    }
    conv2d_weight_gradient(backend_, conv, below_a + in_offset, unpooled_difference, alpha, begin == 0 ? 0.0f : 1.0f,
                           gradient, workspace);
    const float* below_difference = deviation(below_a, below_b, in_offset, std::size_t(rows) * in_units);
    conv2d_weight_gradient(backend_, conv, below_difference, unpooled_b, alpha, 1.0f, gradient, workspace);
  }
}

void ConvHopfield::skip_kernel_gradient(int s, const float* below, const float* above, float alpha, bool overwrite,
                                        float* gradient) {
  const int in_units = shape_.units(shape_.skips[s].from), out_units = shape_.units(shape_.skips[s].to);
  for (int begin = 0; begin < batch_; begin += chunk_) {
    const int rows = std::min(chunk_, batch_ - begin);
    const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
    const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
    conv2d_weight_gradient(backend_, shape_.skip_shape(s, rows), below + in_offset, above + out_offset, alpha,
                           overwrite && begin == 0 ? 0.0f : 1.0f, gradient, workspace);
  }
}

const float* ConvHopfield::plane_values(const NetworkState& state, int j) const {
  return j == 0 ? input_ : state.layers[j - 1].data();
}

void ConvHopfield::skip_couplings(const NetworkState& state, bool with_feedback, int group, int groups,
                                  bool with_input) {
  for (int s = 0; s < shape_.skip_count(); ++s) {
    const SkipSpec& skip = shape_.skips[s];
    const bool drive = (skip.to - 1) % groups == group && (with_input || skip.from >= 1);
    const bool feedback = with_feedback && skip.from >= 1 && (skip.from - 1) % groups == group;
    if (!drive && !feedback) continue;
    const float* weights = parameters_.weights[shape_.skip_tensor(s)].data();
    const float* below = plane_values(state, skip.from);
    const float* above = state.layers[skip.to - 1].data();
    const int in_units = shape_.units(skip.from), out_units = shape_.units(skip.to);
    for (int begin = 0; begin < batch_; begin += chunk_) {
      const int rows = std::min(chunk_, batch_ - begin);
      const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
      const ConvShape conv = call_shape(shape_.skip_shape(s, rows));
      const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
      const std::size_t in_count = std::size_t(rows) * in_units, out_count = std::size_t(rows) * out_units;
      // From the reference as the chain (the clamped input's term needs none).
      const bool drive_from_reference = from_reference_ && skip.from >= 1;
      if (drive) {
        float* field = drive_[skip.to - 1].data() + out_offset;
        const float* x = drive_from_reference
                             ? deviation(below, reference_state_.layers[skip.from - 1].data(), in_offset, in_count)
                             : below + in_offset;
        conv2d_forward(backend_, conv, x, weights, nullptr, field, workspace, true);
        if (drive_from_reference) add_reference(field, reference_skip_drive_[s].data() + out_offset, out_count);
      }
      if (feedback) {
        float* field = feedback_[skip.from - 1].data() + in_offset;
        const float* y = from_reference_
                             ? deviation(above, reference_state_.layers[skip.to - 1].data(), out_offset, out_count)
                             : above + out_offset;
        conv2d_transpose(backend_, conv, y, weights, field, workspace, true);
        if (from_reference_) add_reference(field, reference_skip_feedback_[s].data() + in_offset, in_count);
      }
    }
  }
}

// ---- input, relaxation, energy ----

ConvShape ConvHopfield::call_shape(ConvShape shape) const {
  shape.weights_version = weights_version_;
  return shape;
}

const ConvHopfield::ConvOperandPlan& ConvHopfield::operand_plan(int k, int rows) {
  const std::array<int, 4> key{k, rows, static_cast<int>(backend_.gemm_precision()),
                               static_cast<int>(backend_.convolution_path())};
  const auto found = operand_plans_.find(key);
  if (found != operand_plans_.end()) return found->second;
  // Channel-major is the im2col GEMMs' own layout (kernels/im2col.h). Channels-last
  // where the library takes all three products of the layer and reads and writes
  // such a tensor as is (oneDNN's bf16 kernels): no transposing reorder per call.
  using Direction = ConvolutionDirection;
  ConvShape channels_last = call_shape(shape_.conv_shape(k, rows));
  channels_last.output_layout = nhwc_layout(channels_last.out_channels);
  const bool library = conv_library_takes(backend_, channels_last, Direction::forward) &&
                       conv_library_takes(backend_, channels_last, Direction::backward_data) &&
                       conv_library_takes(backend_, channels_last, Direction::backward_weights);
  ConvOperandPlan plan;
  const bool nhwc = library && backend_.convolution_prefers_channels_last(channels_last.geometry());
  plan.prepool_layout = nhwc ? channels_last.output_layout : cnhw_layout(rows);
  ConvShape bf16_input = channels_last;
  bf16_input.output_layout = plan.prepool_layout;
  bf16_input.input_layout = nhwc_layout(bf16_input.in_channels);
  bf16_input.x_type = OperandType::bf16;
  plan.bf16_input = conv_library_takes_bf16(backend_, bf16_input, Direction::forward);
  // bf16 unpooled fields where the unpooling writes channels-last rows (kernels/max_pool.h).
  ConvShape bf16_output = channels_last;
  bf16_output.y_type = OperandType::bf16;
  const bool bf16 = nhwc && shape_.pool == PoolKind::max;
  plan.bf16_feedback = bf16 && conv_library_takes_bf16(backend_, bf16_output, Direction::backward_data);
  plan.bf16_gradient = bf16 && conv_library_takes_bf16(backend_, bf16_output, Direction::backward_weights);
  return operand_plans_[key] = plan;
}

PoolShape ConvHopfield::with_prepool_layout(int k, ConvShape& conv) {
  conv.output_layout = operand_plan(k, conv.batch).prepool_layout;
  PoolShape pool = shape_.pool_shape(k, conv.batch);
  pool.input_layout = conv.output_layout;
  return pool;
}

void ConvHopfield::set_input(const float* x, int batch) {
  begin_batch(x, batch);
  reference_taken_ = false;  // new inputs or parameters: the next nudged phase takes its own
  // The parameters hold still until the next set_input (EnergyModel::set_input), so
  // this batch's convolutions promise the library unchanged weights.
  weights_version_ = fresh_weights_version();
  // The clamped input's drive P(W_0 * x) and its argmax are constant over a batch:
  // the widest convolution (C*K*K*H*W per sample at full resolution) runs once per
  // batch, not once per step.
  conv_coupling(0, x, nullptr);
  // Conv biases broadcast over their planes, so LayerStepOp and RowEnergyOp see a
  // per-unit bias like a dense layer's.
  for (int k = 0; k < shape_.conv_layers(); ++k) {
    const PlaneShape plane = shape_.conv_plane(k + 1);
    DeviceBuffer<float>& expanded = expanded_bias_[k];
    backend_.fill_zero(expanded.data(), expanded.bytes());
    backend_.run(PlaneRelayoutOp{expanded.data(), expanded.data(), parameters_.biases[k].data(),
                                 nchw_layout(plane.channels), nchw_layout(plane.channels), plane.channels,
                                 plane.plane(), false},
                 plane.units());
  }
}

void ConvHopfield::couplings(const NetworkState& state, bool with_feedback, int group, int groups,
                             std::vector<char>* argmax_current, bool linear) {
  const int states = shape_.state_layers(), convs = shape_.conv_layers();
  // Tensor t couples layer t (the input for t = 0) to state layer t; its drive is
  // drive_[t], its feedback lands on state layer t - 1.
  for (int t = 1; t < states; ++t) {
    const bool drive = t % groups == group, feedback = with_feedback && (t - 1) % groups == group;
    if (!drive && !feedback) continue;
    const float* below = state.layers[t - 1].data();
    const float* above = state.layers[t].data();
    if (t < convs) {
      // The feedback goes through the argmax of the pooled convolution of s_{t-1}
      // at this state: one forward pass finds it, unless it already ran since
      // s_{t-1} last moved (max pooling; the other poolings need no argmax).
      const bool argmax_current_here =
          shape_.pool != PoolKind::max || linear || (argmax_current && (*argmax_current)[t]);
      if (!drive && argmax_current_here) {
        conv_feedback(t, above);
        continue;
      }
      conv_coupling(t, below, feedback ? above : nullptr, linear);
      if (argmax_current) (*argmax_current)[t] = 1;
      continue;
    }
    const int fan_in = shape_.units(t), units = shape_.units(t + 1);
    const float* weights = parameters_.weights[t].data();
    const std::size_t below_count = std::size_t(batch_) * fan_in, above_count = std::size_t(batch_) * units;
    // drive (batch, units) = s_{t-1} (batch, fan_in) W (fan_in, units); from the
    // reference (s_{t-1} - r_{t-1}) W + r_{t-1} W.
    if (drive) {
      const float* x = from_reference_ ? deviation(below, reference_state_.layers[t - 1].data(), 0, below_count) : below;
      backend_.gemm(Transpose::no, Transpose::no, batch_, units, fan_in, 1.0f, x, fan_in, weights, units, 0.0f,
                    drive_[t].data(), units);
      if (from_reference_) add_reference(drive_[t].data(), reference_preactivation_[t].data(), above_count);
    }
    // feedback (batch, fan_in) = s_t (batch, units) W^T, from the reference likewise.
    if (feedback) {
      const float* y = from_reference_ ? deviation(above, reference_state_.layers[t].data(), 0, above_count) : above;
      backend_.gemm(Transpose::no, Transpose::yes, batch_, fan_in, units, 1.0f, y, units, weights, units, 0.0f,
                    feedback_[t - 1].data(), fan_in);
      if (from_reference_) add_reference(feedback_[t - 1].data(), reference_feedback_[t - 1].data(), below_count);
    }
  }
  skip_couplings(state, with_feedback, group, groups, !linear);
}

void ConvHopfield::step_rows(NetworkState& state, const float* target, const PhaseSpec& spec, int step, int begin,
                             int rows) {
  const int states = shape_.state_layers(), top = states - 1;
  const bool nudged = spec.beta != 0.0f;
  const bool readout_nudge = nudged && shape_.cost == CostKind::cross_entropy;
  // Each group of layers (models/update_order.h) moves from fields computed at the
  // latest states: synchronous, one group, every field from the previous step;
  // asynchronous, the odd layers, then the even ones from the new odd ones.
  // argmax_current[t]: conv tensor t's pooling argmax is at the current s_{t-1}.
  const int groups = update_group_count(spec.order);
  std::vector<char> argmax_current(std::size_t(states), 0);
  for (int g = 0; g < groups; ++g) {
    from_reference_ = phase_uses_reference_;
    couplings(state, true, g, groups, &argmax_current);
    from_reference_ = false;  // energy(), the adjoint and the update compute directly
    if (readout_nudge && top % groups == g)
      // -beta dl/ds_top = -beta (softmax - y) W_out^T (Laborieux et al. 2021, §3).
      softmax_nudge(state, target, spec.beta, begin, rows, feedback_[top].data());
    for (int i = g; i < states; i += groups) {
      const bool has_feedback = i < top || readout_nudge;
      const bool mse_nudge = nudged && i == top && shape_.cost == CostKind::mse;
      run_layer_step(state, spec, step, i, begin, rows,
                     {drive_[i].data(), has_feedback ? feedback_[i].data() : nullptr, unit_bias(i),
                      mse_nudge ? target : nullptr});
      if (i + 1 < states) argmax_current[std::size_t(i) + 1] = 0;  // s_i moved
    }
  }
}

// ---- nudged phases from a reference ----

bool ConvHopfield::nudges_from_reference() const {
  return nudged_couplings_ == NudgedCouplings::from_reference ||
         (nudged_couplings_ == NudgedCouplings::automatic && backend_.gemm_precision() != GemmPrecision::fp32);
}

void ConvHopfield::prepare_phase(const NetworkState& state, const PhaseSpec& spec) {
  phase_uses_reference_ = spec.beta != 0.0f && shape_.state_layers() > 1 && nudges_from_reference();
  // One reference per batch: every nudged phase of it (both signs of beta) adds the
  // same L(r), so the products' rounding of r is common to them and cancels in the
  // contrastive update.
  if (phase_uses_reference_ && !reference_taken_) take_reference(state);
}

const float* ConvHopfield::deviation(const float* operand, const float* reference, std::size_t offset,
                                     std::size_t count) {
  backend_.run(AxpbyOp{operand + offset, reference + offset, deviation_.data(), 1.0f, -1.0f}, std::int64_t(count));
  return deviation_.data();
}

void ConvHopfield::add_reference(float* values, const float* reference, std::size_t count) {
  backend_.run(AxpbyOp{values, reference, values, 1.0f, 1.0f}, std::int64_t(count));
}

void ConvHopfield::take_reference(const NetworkState& state) {
  const int states = shape_.state_layers(), convs = shape_.conv_layers();
  // Sized by the training batch, not max_batch (the evaluation batch, often 8x
  // larger, never nudges); a larger batch allocates again.
  if (reference_rows_ < batch_) {
    reference_rows_ = batch_;
    const std::size_t rows = std::size_t(batch_);
    reference_state_ = NetworkState{};
    for (auto* buffers : {&reference_preactivation_, &reference_operand_, &reference_feedback_,
                          &reference_skip_drive_, &reference_skip_feedback_})
      buffers->clear();
    int widest = 1;
    for (int t = 0; t < states; ++t) {
      widest = std::max(widest, shape_.units(t + 1));
      const std::size_t pre = t == 0 ? 0
                              : t < convs ? std::size_t(shape_.conv_shape(t, 1).output_size())
                                          : std::size_t(shape_.units(t + 1));
      const bool operand = t >= 1 && t < convs && shape_.pool != PoolKind::none;
      reference_state_.layers.emplace_back(backend_, rows * shape_.units(t + 1));
      reference_preactivation_.emplace_back(backend_, rows * pre);
      reference_operand_.emplace_back(backend_, operand ? rows * pre : 0);
      reference_feedback_.emplace_back(backend_, rows * shape_.units(t + 1));
    }
    deviation_ = DeviceBuffer<float>(backend_, rows * widest);
    second_deviation_ = DeviceBuffer<float>(backend_, rows * widest);
    unpooled_b_ = DeviceBuffer<float>(backend_, conv_out_.size());
    for (const SkipSpec& skip : shape_.skips) {
      reference_skip_drive_.emplace_back(backend_, rows * shape_.units(skip.to));
      reference_skip_feedback_.emplace_back(backend_, rows * shape_.units(skip.from));
    }
  }
  for (int i = 0; i < states; ++i)  // the layers (not cSB's momenta: no coupling reads them)
    backend_.copy_on_device(reference_state_.layers[i].data(), state.layers[i].data(),
                            std::size_t(batch_) * shape_.units(i + 1) * sizeof(float));
  // L(r) and L^T(P^T(r)) for every chain tensor t >= 1, computed directly.
  for (int t = 1; t < states; ++t) {
    const float* below = reference_state_.layers[t - 1].data();
    const float* above = reference_state_.layers[t].data();
    float* feedback = reference_feedback_[t - 1].data();
    float* preactivation = reference_preactivation_[t].data();
    const int fan_in = shape_.units(t), units = shape_.units(t + 1);
    if (t >= convs) {
      backend_.gemm(Transpose::no, Transpose::no, batch_, units, fan_in, 1.0f, below, fan_in,
                    parameters_.weights[t].data(), units, 0.0f, preactivation, units);
      backend_.gemm(Transpose::no, Transpose::yes, batch_, fan_in, units, 1.0f, above, units,
                    parameters_.weights[t].data(), units, 0.0f, feedback, fan_in);
      continue;
    }
    const std::size_t pre_units = std::size_t(shape_.conv_shape(t, 1).output_size());
    for (int begin = 0; begin < batch_; begin += chunk_) {
      const int rows = std::min(chunk_, batch_ - begin);
      const std::size_t in_offset = std::size_t(begin) * fan_in, out_offset = std::size_t(begin) * units;
      const std::size_t pre_offset = std::size_t(begin) * pre_units;
      ConvShape conv = call_shape(shape_.conv_shape(t, rows));
      const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
      const float* weights = parameters_.weights[t].data();
      if (shape_.pool == PoolKind::none) {
        conv2d_forward(backend_, conv, below + in_offset, weights, nullptr, preactivation + pre_offset, workspace);
        conv2d_transpose(backend_, conv, above + out_offset, weights, feedback + in_offset, workspace);
        continue;
      }
      const PoolShape pool = with_prepool_layout(t, conv);
      float* operand = reference_operand_[t].data() + pre_offset;
      conv2d_forward(backend_, conv, below + in_offset, weights, nullptr, preactivation + pre_offset, workspace);
      // r's argmax (the nudged steps find their own); the pooled values are scratch.
      if (shape_.pool == PoolKind::max) {
        max_pool2d(backend_, pool, preactivation + pre_offset, drive_[t].data() + out_offset,
                   argmax_[t].data() + out_offset);
        max_unpool2d(backend_, pool, above + out_offset, argmax_[t].data() + out_offset, operand);
      } else {
        avg_unpool2d(backend_, pool, above + out_offset, operand);
      }
      conv2d_transpose(backend_, conv, operand, weights, feedback + in_offset, workspace);
    }
  }
  // K * r_from and K^T *' r_to for every skip out of a state layer.
  for (int s = 0; s < shape_.skip_count(); ++s) {
    const SkipSpec& skip = shape_.skips[s];
    if (skip.from < 1) continue;
    const int in_units = shape_.units(skip.from), out_units = shape_.units(skip.to);
    const float* weights = parameters_.weights[shape_.skip_tensor(s)].data();
    for (int begin = 0; begin < batch_; begin += chunk_) {
      const int rows = std::min(chunk_, batch_ - begin);
      const std::size_t in_offset = std::size_t(begin) * in_units, out_offset = std::size_t(begin) * out_units;
      const ConvShape conv = call_shape(shape_.skip_shape(s, rows));
      const ConvWorkspace workspace{columns_.data(), conv_out_.data()};
      conv2d_forward(backend_, conv, reference_state_.layers[skip.from - 1].data() + in_offset, weights, nullptr,
                     reference_skip_drive_[s].data() + out_offset, workspace);
      conv2d_transpose(backend_, conv, reference_state_.layers[skip.to - 1].data() + out_offset, weights,
                       reference_skip_feedback_[s].data() + in_offset, workspace);
    }
  }
  reference_taken_ = true;
}

void ConvHopfield::energy(const NetworkState& state, float* energy) {
  couplings(state, false);
  for (int i = 0; i < shape_.state_layers(); ++i)
    backend_.reduce_rows(RowEnergyOp{state.layers[i].data(), drive_[i].data(), unit_bias(i), energy, shape_.units(i + 1),
                             i > 0},
                 batch_);
}

// ---- contrastive gradient, implicit gradient, read-out ----

void ConvHopfield::conv_bias_gradient(int k, const float* a, const float* b, float alpha_a, float alpha_b,
                                      float* gradient) {
  // The batch sums of every unit, then each plane summed as a (channels, plane) .
  // ones(plane) product.
  const PlaneShape plane = shape_.conv_plane(k + 1);
  const int units = plane.units();
  backend_.run(ColumnSumOp{a, b, unit_sums_.data(), alpha_a, alpha_b, batch_, units}, units);
  backend_.gemm(Transpose::no, Transpose::no, plane.channels, 1, plane.plane(), 1.0f, unit_sums_.data(), plane.plane(),
                ones_.data(), 1, 0.0f, gradient, 1);
}

void ConvHopfield::ep_gradient(const NetworkState& state_a, float beta_a, const NetworkState& state_b, float beta_b,
                               const float* target, ParameterSet& gradient) {
  const int states = shape_.state_layers(), convs = shape_.conv_layers();
  const float c = contrastive_scale(beta_a, beta_b, batch_);
  // The products on the phases' differences where they round their operands (the
  // scratch comes with the batch's reference, which every nudged phase takes).
  const bool from_difference = nudges_from_reference() && reference_taken_;
  for (int t = 0; t < states; ++t) {
    const int fan_in = shape_.units(t), units = shape_.units(t + 1);
    const float* a = state_a.layers[t].data();
    const float* b = state_b.layers[t].data();
    float* weight_gradient = gradient.weights[t].data();
    if (t == 0) {
      // The input is clamped in both phases (and so is its argmax): one product on
      // s_a - s_b, as DenseHopfield does.
      conv_kernel_gradient(0, input_, first_layer_difference(a, b), -c, true, weight_gradient);
    } else if (t < convs && from_difference) {
      conv_kernel_gradient_from_difference(t, state_a.layers[t - 1].data(), a, state_b.layers[t - 1].data(), b, -c,
                                           weight_gradient);
    } else if (t < convs) {
      // dE/dW_t = -corr(s_{t-1}, P^T(s_t)) at each state, through that state's argmax.
      conv_kernel_gradient(t, state_a.layers[t - 1].data(), a, -c, true, weight_gradient);
      conv_kernel_gradient(t, state_b.layers[t - 1].data(), b, c, false, weight_gradient);
    } else if (from_difference) {
      // x_a^T y_a - x_b^T y_b = x_a^T (y_a - y_b) + (x_a - x_b)^T y_b
      const std::size_t count = std::size_t(batch_) * units;
      backend_.run(AxpbyOp{a, b, second_deviation_.data(), 1.0f, -1.0f}, std::int64_t(count));
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, state_a.layers[t - 1].data(), fan_in,
                    second_deviation_.data(), units, 0.0f, weight_gradient, units);
      const float* below_difference = deviation(state_a.layers[t - 1].data(), state_b.layers[t - 1].data(), 0,
                                                std::size_t(batch_) * fan_in);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, below_difference, fan_in, b, units, 1.0f,
                    weight_gradient, units);
    } else {
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, -c, state_a.layers[t - 1].data(), fan_in,
                    a, units, 0.0f, weight_gradient, units);
      backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, c, state_b.layers[t - 1].data(), fan_in, b,
                    units, 1.0f, weight_gradient, units);
    }
    if (t >= convs) {
      // dE/db = -s
      backend_.run(ColumnSumOp{a, b, gradient.biases[t].data(), -c, c, batch_, units}, units);
      continue;
    }
    // dE/db_c = -sum over the plane of channel c of s_t.
    conv_bias_gradient(t, a, b, -c, c, gradient.biases[t].data());
  }
  // dE/dK = -corr(s_from, s_to) for each skip, at each state.
  for (int s = 0; s < shape_.skip_count(); ++s) {
    const SkipSpec& skip = shape_.skips[s];
    float* weight_gradient = gradient.weights[shape_.skip_tensor(s)].data();
    if (from_difference) {
      // corr(x_a, y_a - y_b) + corr(x_a - x_b, y_b); the clamped input has no x_a - x_b.
      const std::size_t out_count = std::size_t(batch_) * shape_.units(skip.to);
      backend_.run(AxpbyOp{state_a.layers[skip.to - 1].data(), state_b.layers[skip.to - 1].data(),
                           second_deviation_.data(), 1.0f, -1.0f},
                   std::int64_t(out_count));
      skip_kernel_gradient(s, plane_values(state_a, skip.from), second_deviation_.data(), -c, true, weight_gradient);
      if (skip.from >= 1)
        skip_kernel_gradient(s,
                             deviation(plane_values(state_a, skip.from), plane_values(state_b, skip.from), 0,
                                       std::size_t(batch_) * shape_.units(skip.from)),
                             state_b.layers[skip.to - 1].data(), -c, false, weight_gradient);
      continue;
    }
    skip_kernel_gradient(s, plane_values(state_a, skip.from), state_a.layers[skip.to - 1].data(), -c, true,
                         weight_gradient);
    skip_kernel_gradient(s, plane_values(state_b, skip.from), state_b.layers[skip.to - 1].data(), c, false,
                         weight_gradient);
  }
  if (has_softmax_readout()) softmax_gradient(state_a, beta_a, state_b, beta_b, target, c, gradient);
}

float ConvHopfield::implicit_gradient(const NetworkState& free_state, const float* target, int iterations,
                                      ParameterSet& gradient) {
  const int states = shape_.state_layers(), convs = shape_.conv_layers();
  // The free state's pooling argmax of every conv tensor above the input (the
  // input's is cached): the couplings below are linear through it.
  if (shape_.pool == PoolKind::max) couplings(free_state, false);
  const float residual = solve_adjoint(
      free_state, target, iterations, [&](const NetworkState& mu) { couplings(mu, true, 0, 1, nullptr, true); },
      drive_, feedback_);
  const NetworkState& mu = adjoint();
  // dL/dtheta = -mu . d(dE/ds)/dtheta: for each coupling -y . K(x), the
  // correlation of x with mu_y plus that of mu_x with y (none for the clamped input).
  for (int t = 0; t < states; ++t) {
    const int fan_in = shape_.units(t), units = shape_.units(t + 1);
    const float* below = t == 0 ? input_ : free_state.layers[t - 1].data();
    const float* above = free_state.layers[t].data();
    float* weight_gradient = gradient.weights[t].data();
    if (t < convs) {
      // Through the free state's argmax: found from s_{t-1} by the first call, kept by the second.
      conv_kernel_gradient(t, below, mu.layers[t].data(), 1.0f, true, weight_gradient);
      if (t > 0) conv_kernel_gradient(t, mu.layers[t - 1].data(), above, 1.0f, false, weight_gradient, true);
      conv_bias_gradient(t, mu.layers[t].data(), nullptr, 1.0f, 0.0f, gradient.biases[t].data());
      continue;
    }
    backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, 1.0f, below, fan_in, mu.layers[t].data(), units,
                  0.0f, weight_gradient, units);
    backend_.gemm(Transpose::yes, Transpose::no, fan_in, units, batch_, 1.0f, mu.layers[t - 1].data(), fan_in, above,
                  units, 1.0f, weight_gradient, units);
    backend_.run(ColumnSumOp{mu.layers[t].data(), nullptr, gradient.biases[t].data(), 1.0f, 0.0f, batch_, units},
                 units);
  }
  for (int s = 0; s < shape_.skip_count(); ++s) {
    const SkipSpec& skip = shape_.skips[s];
    float* weight_gradient = gradient.weights[shape_.skip_tensor(s)].data();
    skip_kernel_gradient(s, plane_values(free_state, skip.from), mu.layers[skip.to - 1].data(), 1.0f, true,
                         weight_gradient);
    if (skip.from > 0)
      skip_kernel_gradient(s, mu.layers[skip.from - 1].data(), free_state.layers[skip.to - 1].data(), 1.0f, false,
                           weight_gradient);
  }
  if (has_softmax_readout())
    softmax_gradient(free_state, 1.0f, free_state, 0.0f, target, contrastive_scale(1.0f, 0.0f, batch_), gradient);
  return residual;
}

void ConvHopfield::metrics(const NetworkState& state, const float* target, float* loss, float* correct) {
  top_layer_metrics(state, target, loss, correct);
}

double ConvHopfield::training_step_flops(int batch, int free_steps, int nudged_steps, int nudged_phases) const {
  const int convs = shape_.conv_layers();
  const double b = batch;
  // One pass through tensor t: a conv GEMM (2 Co CKK N OH OW) or a dense GEMM.
  auto pass = [&](int t) {
    if (t < convs) return shape_.conv_shape(t, 1).gemm_flops() * b;
    return 2.0 * b * shape_.units(t) * shape_.units(t + 1);
  };
  // The contrastive update: two products per tensor above the input, and for
  // max-pooled conv tensors two more (the forward conv that finds each state's argmax).
  auto update_passes = [&](int t) { return t < convs && shape_.pool == PoolKind::max ? 4 : 2; };
  double flops = hopfield_training_step_flops(pass, update_passes, shape_.state_layers(), shape_.chain_tensors(),
                                              shape_.cost == CostKind::cross_entropy, free_steps, nudged_steps,
                                              nudged_phases);
  // Skips: a drive each step, a feedback too out of a state layer, two products in the update.
  const double steps = free_steps + double(nudged_phases) * nudged_steps;
  for (int s = 0; s < shape_.skip_count(); ++s) {
    const double skip_pass = shape_.skip_shape(s, 1).gemm_flops() * b;
    flops += skip_pass * ((shape_.skips[s].from >= 1 ? 2 : 1) * steps + 2);
  }
  return flops;
}

}  // namespace eqprop
