// CUDA graphs of captured stream work (kernels/cuda_graph.h).
//
// Capture mode: thread-local. Only this thread's calls that are unsafe during a
// capture (a cudaMalloc, a synchronous copy) are refused, and they fail with an
// error instead of being recorded: the backend's checked calls then throw
// DeviceError, which is how a step with a host wait inside is found out. Calls of
// other threads (the batch loader's pinned-memory work) are not affected.
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

#include "kernels/cuda_check.h"
#include "kernels/cuda_graph.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

// For the release paths (destructors, an abandoned capture): nothing to report,
// and the thread's last error must not outlive them.
void ignore_cuda_error(cudaError_t status) noexcept {
  if (status != cudaSuccess) (void)cudaGetLastError();
}

class CudaGraph final : public CapturedGraph {
 public:
  CudaGraph(cudaGraph_t graph, cudaStream_t stream) : graph_(graph), stream_(stream) {
    // Flags 0: no auto-free of graph allocations, no device launch, no priorities.
    cudaError_t status = cudaGraphGetNodes(graph_, nullptr, &nodes_);
    if (status == cudaSuccess) status = cudaGraphInstantiate(&exec_, graph_, 0ull);
    if (status != cudaSuccess) {
      ignore_cuda_error(cudaGraphDestroy(graph_));
      cuda_detail::throw_cuda_error(status, "cudaGraphInstantiate", __FILE__, __LINE__);
    }
  }
  ~CudaGraph() override {
    ignore_cuda_error(cudaGraphExecDestroy(exec_));
    ignore_cuda_error(cudaGraphDestroy(graph_));
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void replay() override { EQPROP_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }
  std::size_t nodes() const override { return nodes_; }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::size_t nodes_ = 0;
};

class CudaStreamCapture final : public StreamCapture {
 public:
  explicit CudaStreamCapture(cudaStream_t stream) : stream_(stream) {}

  void begin_capture() override {
    EQPROP_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  }

  std::unique_ptr<CapturedGraph> end_capture() override {
    cudaGraph_t graph = nullptr;
    const cudaError_t status = cudaStreamEndCapture(stream_, &graph);
    if (status != cudaSuccess) {
      if (graph) ignore_cuda_error(cudaGraphDestroy(graph));
      (void)cudaGetLastError();  // an invalidated capture leaves its error behind
      cuda_detail::throw_cuda_error(status, "cudaStreamEndCapture", __FILE__, __LINE__);
    }
    return std::make_unique<CudaGraph>(graph, stream_);
  }

  void abort_capture() noexcept override {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    ignore_cuda_error(cudaStreamIsCapturing(stream_, &capturing));
    if (capturing == cudaStreamCaptureStatusNone) return;
    cudaGraph_t graph = nullptr;
    ignore_cuda_error(cudaStreamEndCapture(stream_, &graph));  // fails for an invalidated capture
    if (graph) ignore_cuda_error(cudaGraphDestroy(graph));
    (void)cudaGetLastError();
  }

 private:
  cudaStream_t stream_;
};

}  // namespace

std::unique_ptr<StreamCapture> make_cuda_stream_capture(cudaStream_t stream) {
  return std::make_unique<CudaStreamCapture>(stream);
}

}  // namespace eqprop
