// libFuzzer target: read_ising_couplings (G-set layout plus `h i h_i` field lines).
#include <cstdint>

#include "hosttools/gset_reader.h"
#include "kernels/error.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = eqprop::fuzz::write_input("ising", data, size);
  try {
    eqprop::read_ising_couplings(path);
  } catch (const eqprop::Error&) {
  }
  return 0;
}
