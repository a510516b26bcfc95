// The CUDA backend: device memory, cuBLAS for GEMMs, one kernel per single-source
// elementwise op, a compute stream and a copy stream. Declared for every build;
// defined only where the CUDA backend is compiled (EQPROP_HAVE_CUDA).
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace eqprop {

// Throws DeviceError when no GPU is usable.
std::unique_ptr<Backend> make_cuda_backend();

// Number of visible CUDA devices; 0 when the driver or a device is missing.
int cuda_device_count();

}  // namespace eqprop
