// Checked CUDA runtime and cuBLAS calls: a failing call throws DeviceError naming
// the call as written, where it is (file:line) and what CUDA says went wrong, e.g.
//   CUDA error: cudaMalloc(&pointer, bytes) at kernels/cuda_backend.cu:120:
//   cudaErrorMemoryAllocation (out of memory)
// Only translation units that see the CUDA headers include this (nvcc-built .cu
// files); the rest of eqprop reaches the device through kernels/backend.h.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "kernels/error.h"

namespace eqprop {
namespace cuda_detail {

inline std::string call_site(const char* call, const char* file, int line) {
  return std::string(call) + " at " + file + ":" + std::to_string(line);
}

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                          int line) {
  // A non-sticky error (a failed allocation, a bad argument) is also remembered as
  // the thread's "last error"; clear it, or the cudaGetLastError() after the next
  // kernel launch would report this old failure as that launch's.
  (void)cudaGetLastError();
  throw DeviceError("CUDA error: " + call_site(call, file, line) + ": " + cudaGetErrorName(status) +
                    " (" + cudaGetErrorString(status) + ")");
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line) {
  throw DeviceError("cuBLAS error: " + call_site(call, file, line) + ": " +
                    cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) throw_cuda_error(status, call, file, line);
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cublas_error(status, call, file, line);
}

}  // namespace cuda_detail
}  // namespace eqprop

// EQPROP_CUDA_CHECK(cudaMalloc(&p, n)); throws DeviceError unless cudaSuccess.
#define EQPROP_CUDA_CHECK(call) ::eqprop::cuda_detail::check_cuda((call), #call, __FILE__, __LINE__)
// EQPROP_CUBLAS_CHECK(cublasSgemm(...)); throws DeviceError unless CUBLAS_STATUS_SUCCESS.
#define EQPROP_CUBLAS_CHECK(call) \
  ::eqprop::cuda_detail::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: a bad launch configuration shows up here, not at the launch.
#define EQPROP_CUDA_CHECK_LAUNCH(kernel_name)                                               \
  ::eqprop::cuda_detail::check_cuda(cudaGetLastError(), "launch of " kernel_name, __FILE__, \
                                    __LINE__)
