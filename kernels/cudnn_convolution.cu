#include "kernels/cudnn_convolution.h"

#ifdef EQPROP_HAVE_CUDNN

#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "kernels/cuda_check.h"
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
  std::map<ConvolutionPlanKey, std::unique_ptr<Plan>> plans;  // null: no cuDNN path (bf16)
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
    std::unique_ptr<Plan> made;
    if (precision != GemmPrecision::bf16) made = build(g, precision, direction);
    return (plans[key] = std::move(made)).get();
  }

  std::unique_ptr<Plan> build(const ConvolutionGeometry& g, GemmPrecision precision, Direction direction) const {
    const SlidingWindow& s = g.window;
    auto plan = std::make_unique<Plan>();
    EQPROP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
    EQPROP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
    EQPROP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
    EQPROP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan->conv));
    set_planes(plan->x, g.batch, g.in_channels, s.in_h, s.in_w, g.input_layout);
    set_planes(plan->y, g.batch, g.out_channels, s.out_h, s.out_w, g.output_layout);
    EQPROP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g.out_channels,
                                                  g.in_channels, s.kernel, s.kernel));
    // CROSS_CORRELATION is PyTorch's (and conv_ops') "convolution": no kernel flip.
    EQPROP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->conv, s.padding, s.padding, s.stride, s.stride, 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    EQPROP_CUDNN_CHECK(cudnnSetConvolutionMathType(
        plan->conv, precision == GemmPrecision::tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    int returned = 0;
    if (direction == Direction::forward) {
      cudnnConvolutionFwdAlgoPerf_t perf{};
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan->x, plan->w, plan->conv, plan->y, 1,
                                                                &returned, &perf));
      plan->algorithm = perf.algo;
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, plan->x, plan->w, plan->conv, plan->y,
                                                                 perf.algo, &plan->workspace_bytes));
    } else if (direction == Direction::backward_data) {
      cudnnConvolutionBwdDataAlgoPerf_t perf{};
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, plan->w, plan->y, plan->conv, plan->x,
                                                                     1, &returned, &perf));
      plan->algorithm = perf.algo;
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, plan->w, plan->y, plan->conv, plan->x,
                                                                      perf.algo, &plan->workspace_bytes));
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf{};
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, plan->x, plan->y, plan->conv,
                                                                       plan->w, 1, &returned, &perf));
      plan->algorithm = perf.algo;
      EQPROP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, plan->x, plan->y, plan->conv,
                                                                        plan->w, perf.algo, &plan->workspace_bytes));
    }
    if (returned < 1) return nullptr;
    return plan;
  }
};

class CudnnConvolutions final : public ConvolutionLibrary {
 public:
  explicit CudnnConvolutions(cudaStream_t stream) {
    EQPROP_CUDNN_CHECK(cudnnCreate(&cache_.handle));
    EQPROP_CUDNN_CHECK(cudnnSetStream(cache_.handle, stream));
  }

  bool forward(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* x, const float* weights,
               float* y) override {
    return run(geometry, precision, Direction::forward, [&](const Plan& plan, void* workspace) {
      const float one = 1.0f, zero = 0.0f;
      EQPROP_CUDNN_CHECK(cudnnConvolutionForward(cache_.handle, &one, plan.x, x, plan.w, weights, plan.conv,
                                                 static_cast<cudnnConvolutionFwdAlgo_t>(plan.algorithm), workspace,
                                                 plan.workspace_bytes, &zero, plan.y, y));
    });
  }
  bool backward_data(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* y,
                     const float* weights, float* x) override {
    return run(geometry, precision, Direction::backward_data, [&](const Plan& plan, void* workspace) {
      const float one = 1.0f, zero = 0.0f;
      EQPROP_CUDNN_CHECK(cudnnConvolutionBackwardData(cache_.handle, &one, plan.w, weights, plan.y, y, plan.conv,
                                                      static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algorithm),
                                                      workspace, plan.workspace_bytes, &zero, plan.x, x));
    });
  }
  bool backward_weights(const ConvolutionGeometry& geometry, GemmPrecision precision, const void* x,
                        const void* y, float alpha, float beta, float* weight_gradient) override {
    return run(geometry, precision, Direction::backward_weights, [&](const Plan& plan, void* workspace) {
      EQPROP_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cache_.handle, &alpha, plan.x, x, plan.y, y, plan.conv,
                                                        static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan.algorithm),
                                                        workspace, plan.workspace_bytes, &beta, plan.w,
                                                        weight_gradient));
    });
  }
  // cudnnGetVersion's number is major * 10000 + minor * 100 + patch (cuDNN 9).
  std::string description() const override {
    const std::size_t version = cudnnGetVersion();
    return "cuDNN " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
           std::to_string(version % 100);
  }

 private:
  // call(plan, workspace) with the direction's plan and a workspace of its size;
  // false, calling nothing, where cuDNN has no plan. Operands come in fp32 only
  // (takes_bf16_operands: false), and bf16 products have no plan (Cache::plan): they
  // run im2col + cuBLAS's bf16 GEMMs.
  template <class Call>
  bool run(const ConvolutionGeometry& geometry, GemmPrecision precision, Direction direction, const Call& call) {
    if (geometry.x_type != OperandType::f32 || geometry.y_type != OperandType::f32) return false;
    const Plan* plan = cache_.plan(geometry, precision, direction);
    if (!plan) return false;
    call(*plan, cache_.reserve(plan->workspace_bytes));
    return true;
  }

  Cache cache_;
};

}  // namespace

std::unique_ptr<ConvolutionLibrary> make_cudnn_convolutions(void* cuda_stream) {
  return std::make_unique<CudnnConvolutions>(static_cast<cudaStream_t>(cuda_stream));
}

}  // namespace eqprop

#endif  // EQPROP_HAVE_CUDNN
