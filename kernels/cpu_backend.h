// The CPU backend: host memory, OpenBLAS for GEMMs, OpenMP loops over the
// single-source elementwise ops.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace eqprop {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace eqprop
