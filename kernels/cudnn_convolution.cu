#include "kernels/cudnn_convolution.h"

#ifdef EQPROP_HAVE_CUDNN

#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda_check.h"
#include "kernels/device_buffer.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

void check_cudnn(cudnnStatus_t status, const char* call) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw DeviceError(std::string(call) + " failed: " + cudnnGetErrorString(status));
}
#define EQPROP_CUDNN_CHECK(call) check_cudnn((call), #call)

using Direction = ConvolutionDirection;

// The descriptors of one convolution, the algorithm for its direction and its workspace size.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algorithm = 0;  // the direction's cudnn*Algo_t
  std::size_t workspace_bytes = 0;
  // bf16: x, w and y channels-last bf16 copies (CudnnConvolutions' scratch), not
  // the caller's tensors.
  bool bf16 = false;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

void set_planes(cudnnTensorDescriptor_t desc, int batch, int channels, int h, int w, const PlaneLayout& layout) {
  const int plane = h * w;
  EQPROP_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(desc, CUDNN_DATA_FLOAT, batch, channels, h, w,
                                                  layout.sample_stride * plane,
                                                  layout.channel_stride * plane + layout.channel_step,
                                                  w * layout.position_stride, layout.position_stride));
}

struct Cache {
  cudnnHandle_t handle = nullptr;
  std::map<ConvolutionPlanKey, std::unique_ptr<Plan>> plans;  // null: cuDNN has no algorithm for it
  void* workspace = nullptr;
  std::size_t workspace_capacity = 0;

  ~Cache() {
    plans.clear();
    if (workspace) cudaFree(workspace);
    if (handle) cudnnDestroy(handle);
  }

  void* reserve(std::size_t bytes) {
    if (bytes <= workspace_capacity) return workspace;
    // The old workspace may still be in use by queued work: cudaFree waits for the device.
    if (workspace) EQPROP_CUDA_CHECK(cudaFree(workspace));
    workspace = nullptr;
    workspace_capacity = 0;
    EQPROP_CUDA_CHECK(cudaMalloc(&workspace, bytes));
    workspace_capacity = bytes;
    return workspace;
  }

  const Plan* plan(const ConvolutionGeometry& g, GemmPrecision precision, Direction direction) {
    const ConvolutionPlanKey key = convolution_plan_key(g, precision, direction);
    const auto found = plans.find(key);
    if (found != plans.end()) return found->second.get();
    return (plans[key] = build(g, precision, direction)).get();
  }

  std::unique_ptr<Plan> build(const ConvolutionGeometry& g, GemmPrecision precision, Direction direction) const {
    const SlidingWindow& s = g.window;
    auto plan = std::make_unique<Plan>();
    EQPROP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
    EQPROP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
    EQPROP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
    EQPROP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan->conv));
    plan->bf16 = precision == GemmPrecision::bf16;
    if (plan->bf16) {
      // NHWC activations and a KRSC filter, dense: the tensor cores' bf16 layouts.
      EQPROP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, g.batch,
                                                    g.in_channels, s.in_h, s.in_w));
      EQPROP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, g.batch,
                                                    g.out_channels, s.out_h, s.out_w));
      EQPROP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC,
                                                    g.out_channels, g.in_channels, s.kernel, s.kernel));
    } else {
      set_planes(plan->x, g.batch, g.in_channels, s.in_h, s.in_w, g.input_layout);
      set_planes(plan->y, g.batch, g.out_channels, s.out_h, s.out_w, g.output_layout);
      EQPROP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g.out_channels,
                                                    g.in_channels, s.kernel, s.kernel));
    }
    // CROSS_CORRELATION is PyTorch's (and conv_ops') "convolution": no kernel flip.
    EQPROP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->conv, s.padding, s.padding, s.stride, s.stride, 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    EQPROP_CUDNN_CHECK(cudnnSetConvolutionMathType(
        plan->conv, precision == GemmPrecision::fp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    // The heuristic's first answer; a status other than success (a configuration
    // this GPU or cuDNN build lacks) leaves the call to im2col.
    int returned = 0;
    if (direction == Direction::forward) {
      cudnnConvolutionFwdAlgoPerf_t perf{};
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan->x, plan->w, plan->conv, plan->y, 1,
                                                                &returned, &perf));
      plan->algorithm = perf.algo;
      if (returned < 1 || perf.status != CUDNN_STATUS_SUCCESS) return nullptr;
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, plan->x, plan->w, plan->conv, plan->y,
                                                                 perf.algo, &plan->workspace_bytes));
    } else if (direction == Direction::backward_data) {
      cudnnConvolutionBwdDataAlgoPerf_t perf{};
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, plan->w, plan->y, plan->conv, plan->x,
                                                                     1, &returned, &perf));
      plan->algorithm = perf.algo;
      if (returned < 1 || perf.status != CUDNN_STATUS_SUCCESS) return nullptr;
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, plan->w, plan->y, plan->conv, plan->x,
                                                                      perf.algo, &plan->workspace_bytes));
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf{};
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, plan->x, plan->y, plan->conv,
                                                                       plan->w, 1, &returned, &perf));
      plan->algorithm = perf.algo;
      if (returned < 1 || perf.status != CUDNN_STATUS_SUCCESS) return nullptr;
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, plan->x, plan->y, plan->conv,
                                                                        plan->w, perf.algo, &plan->workspace_bytes));
    }
    return plan;
  }
};

class CudnnConvolutions final : public ConvolutionLibrary {
 public:
  CudnnConvolutions(Backend& backend, cudaStream_t stream) : backend_(backend) {
    EQPROP_CUDNN_CHECK(cudnnCreate(&cache_.handle));
    EQPROP_CUDNN_CHECK(cudnnSetStream(cache_.handle, stream));
  }

  // Each direction is one cuDNN call: on the caller's tensors, or for a bf16 plan on
  // bf16 channels-last copies of the operands into a bf16 result that is then
  // converted into the caller's fp32 tensor.
  bool forward(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* x, const float* weights,
               float* y) override {
    const Plan* plan = find(geometry, precision, Direction::forward);
    if (!plan) return false;
    const bool bf16 = plan->bf16;
    const void* x_operand = bf16 ? input_bf16(geometry, x) : x;
    const void* w_operand = bf16 ? filter_bf16(geometry, weights) : weights;
    void* result = bf16 ? static_cast<void*>(output_scratch(geometry)) : y;
    const float one = 1.0f, zero = 0.0f;
    EQPROP_CUDNN_CHECK(cudnnConvolutionForward(
        cache_.handle, &one, plan->x, x_operand, plan->w, w_operand, plan->conv,
        static_cast<cudnnConvolutionFwdAlgo_t>(plan->algorithm), cache_.reserve(plan->workspace_bytes),
        plan->workspace_bytes, &zero, plan->y, result));
    if (bf16) unpack_output(geometry, y);
    return true;
  }

  bool backward_data(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* y,
                     const float* weights, float* x) override {
    const Plan* plan = find(geometry, precision, Direction::backward_data);
    if (!plan) return false;
    const bool bf16 = plan->bf16;
    const void* y_operand = bf16 ? output_bf16(geometry, y) : y;
    const void* w_operand = bf16 ? filter_bf16(geometry, weights) : weights;
    void* result = bf16 ? static_cast<void*>(input_scratch(geometry)) : x;
    const float one = 1.0f, zero = 0.0f;
    EQPROP_CUDNN_CHECK(cudnnConvolutionBackwardData(
        cache_.handle, &one, plan->w, w_operand, plan->y, y_operand, plan->conv,
        static_cast<cudnnConvolutionBwdDataAlgo_t>(plan->algorithm), cache_.reserve(plan->workspace_bytes),
        plan->workspace_bytes, &zero, plan->x, result));
    if (bf16) unpack_input(geometry, x);
    return true;
  }

  bool backward_weights(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* x,
                        const void* y, float alpha, float beta, float* weight_gradient) override {
    const Plan* plan = find(geometry, precision, Direction::backward_weights);
    if (!plan) return false;
    const bool bf16 = plan->bf16;
    const void* x_operand = bf16 ? input_bf16(geometry, x) : x;
    const void* y_operand = bf16 ? output_bf16(geometry, y) : y;
    // bf16: this call's gradient alone, alpha and beta applied after in fp32, so the
    // EP update's two calls (s- with beta = 0, then s+ onto it) accumulate in fp32.
    void* result = bf16 ? static_cast<void*>(filter_scratch(geometry)) : weight_gradient;
    const float one = 1.0f, zero = 0.0f;
    EQPROP_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        cache_.handle, bf16 ? &one : &alpha, plan->x, x_operand, plan->y, y_operand, plan->conv,
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan->algorithm), cache_.reserve(plan->workspace_bytes),
        plan->workspace_bytes, bf16 ? &zero : &beta, plan->w, result));
    if (bf16) unpack_filter(geometry, alpha, beta, weight_gradient);
    return true;
  }

  bool prefers_channels_last(const ConvolutionGeometry& /*geometry*/, GemmPrecision precision) override {
    return precision == GemmPrecision::bf16;  // a bf16 plan's own layout: no relayout at either end
  }

  bool takes_bf16_operands(const ConvolutionGeometry& geometry, GemmPrecision precision,
                           Direction direction) override {
    return precision == GemmPrecision::bf16 && find(geometry, precision, direction) != nullptr;
  }

  // cudnnGetVersion's number is major * 10000 + minor * 100 + patch (cuDNN 9).
  std::string description() const override {
    const std::size_t version = cudnnGetVersion();
    return "cuDNN " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
           std::to_string(version % 100);
  }

 private:
  // The direction's plan; null, where cuDNN has none, or for operands this library
  // does not take: fp32 plans read fp32 only, bf16 plans fp32 in any layout or bf16
  // channels-last (copied as they are into cuDNN's NHWC).
  const Plan* find(const ConvolutionGeometry& g, GemmPrecision precision, Direction direction) {
    if (precision != GemmPrecision::bf16) {
      if (g.x_type != OperandType::f32 || g.y_type != OperandType::f32) return nullptr;
    } else if ((g.x_type == OperandType::bf16 && !g.input_layout.channels_last(g.in_channels)) ||
               (g.y_type == OperandType::bf16 && !g.output_layout.channels_last(g.out_channels))) {
      return nullptr;
    }
    return cache_.plan(g, precision, direction);
  }

  // ---- bf16: channels-last bf16 copies in, the caller's fp32 tensors out ----
  // Converted on every call, the weights included: their copy costs 1 / (batch
  // out_h out_w) of the convolution's multiply-adds, and a recorded CUDA graph
  // (engine/captured_step.h) replays the conversion where a copy kept across calls
  // would go stale when the weights change.

  static std::int64_t input_count(const ConvolutionGeometry& g) {
    return std::int64_t(g.batch) * g.in_channels * g.window.in_h * g.window.in_w;
  }
  static std::int64_t output_count(const ConvolutionGeometry& g) {
    return std::int64_t(g.batch) * g.out_channels * g.window.out_h * g.window.out_w;
  }
  static std::int64_t filter_count(const ConvolutionGeometry& g) {
    return std::int64_t(g.out_channels) * g.in_channels * g.window.kernel * g.window.kernel;
  }
  std::uint16_t* scratch(DeviceBuffer<std::uint16_t>& buffer, std::int64_t count) {
    // Freeing the old buffer waits for the device (cudaFree), so queued work that
    // still reads it finishes first.
    if (buffer.size() < std::size_t(count)) buffer = DeviceBuffer<std::uint16_t>(backend_, std::size_t(count));
    return buffer.data();
  }
  std::uint16_t* input_scratch(const ConvolutionGeometry& g) { return scratch(x_bf16_, input_count(g)); }
  std::uint16_t* output_scratch(const ConvolutionGeometry& g) { return scratch(y_bf16_, output_count(g)); }
  std::uint16_t* filter_scratch(const ConvolutionGeometry& g) { return scratch(w_bf16_, filter_count(g)); }

  // operand in `layout` (fp32 or bf16 as `type` says) as dense NHWC bf16: as it is,
  // or converted into `buffer` (grown only where a conversion runs).
  const void* channels_last_bf16(const void* operand, OperandType type, const PlaneLayout& layout, int channels,
                                 int plane, std::int64_t count, DeviceBuffer<std::uint16_t>& buffer) {
    if (type == OperandType::bf16) return operand;  // channels-last already (find)
    std::uint16_t* target = scratch(buffer, count);
    backend_.run(ChannelsLastBf16Op{static_cast<const float*>(operand), nullptr, target, layout,
                                    nhwc_layout(channels), channels, plane},
                 count);
    return target;
  }
  const void* input_bf16(const ConvolutionGeometry& g, const void* x) {
    return channels_last_bf16(x, g.x_type, g.input_layout, g.in_channels, g.window.in_h * g.window.in_w,
                              input_count(g), x_bf16_);
  }
  const void* output_bf16(const ConvolutionGeometry& g, const void* y) {
    return channels_last_bf16(y, g.y_type, g.output_layout, g.out_channels, g.window.out_h * g.window.out_w,
                              output_count(g), y_bf16_);
  }
  // (out, in, kernel, kernel) row-major = NCHW of out "samples": KRSC is its NHWC.
  const void* filter_bf16(const ConvolutionGeometry& g, const float* weights) {
    const int taps = g.window.kernel * g.window.kernel;
    return channels_last_bf16(weights, OperandType::f32, nchw_layout(g.in_channels), g.in_channels, taps,
                              filter_count(g), w_bf16_);
  }

  void unpack_input(const ConvolutionGeometry& g, float* x) {
    backend_.run(PlanesFromBf16Op{x_bf16_.data(), x, nhwc_layout(g.in_channels), g.input_layout, g.in_channels,
                                  g.window.in_h * g.window.in_w, 1.0f, 0.0f},
                 input_count(g));
  }
  void unpack_output(const ConvolutionGeometry& g, float* y) {
    backend_.run(PlanesFromBf16Op{y_bf16_.data(), y, nhwc_layout(g.out_channels), g.output_layout, g.out_channels,
                                  g.window.out_h * g.window.out_w, 1.0f, 0.0f},
                 output_count(g));
  }
  void unpack_filter(const ConvolutionGeometry& g, float alpha, float beta, float* weight_gradient) {
    backend_.run(PlanesFromBf16Op{w_bf16_.data(), weight_gradient, nhwc_layout(g.in_channels),
                                  nchw_layout(g.in_channels), g.in_channels, g.window.kernel * g.window.kernel,
                                  alpha, beta},
                 filter_count(g));
  }

  Backend& backend_;
  Cache cache_;
  DeviceBuffer<std::uint16_t> x_bf16_, y_bf16_, w_bf16_;  // grown to the largest call, kept
};

}  // namespace

std::unique_ptr<ConvolutionLibrary> make_cudnn_convolutions(Backend& backend, void* cuda_stream) {
  return std::make_unique<CudnnConvolutions>(backend, static_cast<cudaStream_t>(cuda_stream));
}

}  // namespace eqprop

#endif  // EQPROP_HAVE_CUDNN
