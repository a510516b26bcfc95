// The CUDA backend as a module of its own: kernels/cuda_backend.cu and
// kernels/cudnn_convolution.cu are built into libeqprop_cuda.so, which links cuBLAS
// and cuDNN; the engine links only the CUDA runtime (to count GPUs) and loads the
// module with dlopen the first time a CUDA backend is made. Why: loading cuBLAS
// (cuBLASLt's relocations) raises a process's peak resident memory by ~210 MB, which
// `eqprop help`, a CPU run or a refused input file would otherwise pay at start-up.
//
// Where the module is looked for, first match wins: next to the running program (the
// build tree), in the install's library directory relative to the program's directory
// (bin/../lib, an $ORIGIN-relative rule), then by name through the dynamic linker's
// own search (LD_LIBRARY_PATH, the program's runpath), for programs installed
// elsewhere that use the engine as a library. Defined only in CUDA builds.
#pragma once

#include "kernels/backend.h"

namespace eqprop {

// The module's file name and the entry point it exports (defined at the end of
// kernels/cuda_backend.cu): makes a CUDA backend, the caller owns it; throws
// DeviceError when no GPU is usable.
inline constexpr char kCudaModuleFile[] = "libeqprop_cuda.so";
inline constexpr char kCudaModuleEntryPoint[] = "eqprop_make_cuda_backend";
using CudaModuleEntryPoint = Backend* (*)();

// The number of visible CUDA devices, asked of the CUDA runtime without loading the
// module; 0 when the driver or a device is missing. Never throws.
int visible_cuda_devices() noexcept;

// Loads the module once per process (it is never unloaded: the backends it made may
// live until exit) and returns its entry point. Throws DeviceError, one line naming
// where it looked and what the dynamic linker said (the module, or a CUDA library
// it needs, is missing).
CudaModuleEntryPoint cuda_module_entry_point();

}  // namespace eqprop
