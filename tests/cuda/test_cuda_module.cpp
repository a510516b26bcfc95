// The CUDA backend module (kernels/cuda_module.h): built next to the programs, found
// there, its entry point resolved; and a program without it fails with one line.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "kernels/backend.h"
#include "kernels/error.h"
#include "tests/skip.h"
#include "tests/test_util.h"

#if defined(EQPROP_HAVE_CUDA)
#include "kernels/cuda_module.h"

namespace eqprop {
namespace {

TEST_CASE("cuda module: found next to the program, and its entry point makes a backend or says why not") {
  CHECK(std::filesystem::exists(std::filesystem::path(EQPROP_CLI_PATH).parent_path() / kCudaModuleFile));
  const CudaModuleEntryPoint make = cuda_module_entry_point();
  REQUIRE(static_cast<bool>(make));
  if (visible_cuda_devices() > 0) {
    const std::unique_ptr<Backend> backend(make());
    CHECK(backend->name() == "cuda");
  } else {
    test::check_contains(test::thrown_message<DeviceError>([&] { delete make(); }), {"no usable CUDA GPU"});
  }
}

TEST_CASE("cuda module: a program installed without it says so in one line") {
  if (test::skip_without_gpu()) return;  // without a GPU the module is never looked for
  test::TempDir dir;
  const std::filesystem::path alone = dir.path() / "eqprop";
  std::filesystem::copy_file(EQPROP_CLI_PATH, alone);
  const std::string err = dir.file("err.txt");
  const int status = std::system((alone.string() + " bench --device cuda --repeats 1 > /dev/null 2> " + err).c_str());
  CHECK(status != 0);
  std::ifstream in(err);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  test::check_contains(text, {"cannot load the CUDA backend", kCudaModuleFile});
}

}  // namespace
}  // namespace eqprop
#endif
