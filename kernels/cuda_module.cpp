#include "kernels/cuda_module.h"

#if defined(EQPROP_HAVE_CUDA)

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "kernels/error.h"

// The install's library directory relative to its program directory (CMake's
// CMAKE_INSTALL_BINDIR -> CMAKE_INSTALL_LIBDIR, set on this file in CMakeLists.txt).
#ifndef EQPROP_CUDA_MODULE_FROM_BINDIR
#define EQPROP_CUDA_MODULE_FROM_BINDIR "../lib"
#endif

namespace eqprop {
namespace {

namespace fs = std::filesystem;

// The directories kernels/cuda_module.h lists, in its order: the running program's
// (/proc/self/exe names it however the program was started), then the install's
// library directory next to it. Empty where /proc is not mounted.
std::vector<fs::path> module_directories() {
  std::error_code error;
  const fs::path program = fs::read_symlink("/proc/self/exe", error);
  if (error) return {};
  const fs::path directory = program.parent_path();
  return {directory, (directory / EQPROP_CUDA_MODULE_FROM_BINDIR).lexically_normal()};
}

CudaModuleEntryPoint load_entry_point() {
  std::string looked_in;
  std::string candidate;
  for (const fs::path& directory : module_directories()) {
    looked_in += directory.string() + ", ";
    std::error_code error;
    if (fs::exists(directory / kCudaModuleFile, error)) {
      candidate = (directory / kCudaModuleFile).string();
      break;
    }
  }
  // Not found in the program's directories: the dynamic linker's search, by name.
  const std::string module_name = candidate.empty() ? std::string(kCudaModuleFile) : candidate;
  void* module = dlopen(module_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!module) {
    // dlerror names the file that is missing: the module itself, or a CUDA library
    // (cuBLAS, cuDNN) it needs.
    const char* why = dlerror();
    throw DeviceError("cannot load the CUDA backend: " + std::string(why ? why : "dlopen failed") +
                      " (the module " + kCudaModuleFile + " is looked for in " + looked_in +
                      "then on the library path); use --device cpu");
  }
  void* entry = dlsym(module, kCudaModuleEntryPoint);
  if (!entry)
    throw DeviceError("cannot load the CUDA backend: " + module_name + " has no " + kCudaModuleEntryPoint +
                      " (a module of another eqprop build?)");
  return reinterpret_cast<CudaModuleEntryPoint>(entry);
}

}  // namespace

int visible_cuda_devices() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the error so that later CUDA calls do not see it
    return 0;
  }
  return count;
}

CudaModuleEntryPoint cuda_module_entry_point() {
  // A failed load throws out of the initializer and is tried again at the next call.
  static const CudaModuleEntryPoint entry = load_entry_point();
  return entry;
}

}  // namespace eqprop

#endif  // EQPROP_HAVE_CUDA
