// libFuzzer target: read_cifar10_batches on one batch file.
#include <cstdint>

#include "hosttools/cifar10_reader.h"
#include "kernels/error.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = eqprop::fuzz::write_input("cifar10", data, size);
  try {
    eqprop::read_cifar10_batches({path});
  } catch (const eqprop::Error&) {
  }
  return 0;
}
