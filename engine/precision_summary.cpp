#include "engine/precision_summary.h"

namespace eqprop {

std::string gemm_precision_summary(Backend& backend, GemmPrecision precision) {
  const std::string name = gemm_precision_name(precision);
  if (precision == GemmPrecision::fp32) return name;
  if (backend.native_gemm_precision(precision)) {
    if (backend.name() == "cuda") return name + " on the tensor cores";
    const std::string library = backend.convolution_library_description();
    return name + " on " + (library.empty() ? std::string("the device's own instructions") : library);
  }
  const std::string why = backend.name() == "cuda"          ? "this GPU has no " + name + " tensor cores"
                          : precision == GemmPrecision::tf32 ? "CPUs have no tf32 instructions"
                                                             : "this CPU has no bf16 instructions";
  return name + ", emulated: " + why + ", so operands are rounded to " + name + " and multiplied in fp32 (" + name +
         "'s accuracy, slower than fp32)";
}

}  // namespace eqprop
