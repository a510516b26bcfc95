// One line, for the user, on how training.gemm_precision runs on a backend: on the
// device's own bf16 / tf32 instructions, or emulated (operands rounded in a copy,
// fp32 arithmetic), which keeps the accuracy of the mode but none of its speed.
// The run's header (`eqprop train`) and `eqprop bench` print it, so a bf16 run on a
// CPU without bf16 instructions says so instead of running slower than fp32 unannounced.
#pragma once

#include <string>

#include "kernels/backend.h"

namespace eqprop {

// e.g. "fp32", "bf16 on oneDNN 2.6.3, ISA avx512_core_bf16 (...)", "bf16 on the
// tensor cores", "bf16, emulated: this CPU has no bf16 instructions, ...".
std::string gemm_precision_summary(Backend& backend, GemmPrecision precision);

}  // namespace eqprop
