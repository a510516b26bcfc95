#include <string>

#include "kernels/backend.h"
#include "kernels/cpu_backend.h"
#include "kernels/cuda_module.h"
#include "kernels/error.h"

namespace eqprop {

bool cuda_device_available() {
#if defined(EQPROP_HAVE_CUDA)
  return visible_cuda_devices() > 0;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend();
  if (device == "cuda" || device == "auto") {
#if defined(EQPROP_HAVE_CUDA)
    // The GPU count comes from the CUDA runtime; the module (and cuBLAS with it) is
    // loaded only now, when a GPU will be used (kernels/cuda_module.h).
    if (visible_cuda_devices() > 0) return std::unique_ptr<Backend>(cuda_module_entry_point()());
    if (device == "cuda")
      throw DeviceError("device 'cuda' requested, but no CUDA GPU is visible on this machine "
                        "(use --device cpu or --device auto)");
#else
    if (device == "cuda")
      throw DeviceError("device 'cuda' requested, but this eqprop was built without the CUDA "
                        "backend (nvcc was not found at configure time); use --device cpu");
#endif
    return make_cpu_backend();
  }
  throw ConfigError("device '" + device + "' is not one of auto, cpu, cuda");
}

}  // namespace eqprop
