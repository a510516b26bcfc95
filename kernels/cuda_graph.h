// Stream capture on CUDA (kernels/stream_capture.h): the calls a backend makes on
// its compute stream between begin_capture and end_capture become a CUDA graph
// (cudaStreamBeginCapture / cudaStreamEndCapture), instantiated once and launched
// with cudaGraphLaunch on the same stream. Seen only by the CUDA translation units.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "kernels/stream_capture.h"

namespace eqprop {

// Captures `stream` (the backend's compute stream, which must outlive the result).
std::unique_ptr<StreamCapture> make_cuda_stream_capture(cudaStream_t stream);

}  // namespace eqprop
