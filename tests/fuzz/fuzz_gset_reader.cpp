// libFuzzer target: read_gset_graph, then the spin-assignment reader on the same
// bytes (both are line-oriented text readers of the solver's files).
#include <cstdint>

#include "hosttools/gset_reader.h"
#include "kernels/error.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = eqprop::fuzz::write_input("gset", data, size);
  try {
    eqprop::read_gset_graph(path);
  } catch (const eqprop::Error&) {
  }
  try {
    eqprop::read_spin_assignment(path, 5);
  } catch (const eqprop::Error&) {
  }
  return 0;
}
