// libFuzzer target: decode_safetensors on the bytes of a checkpoint file, and a
// re-encode of whatever it accepts (which must decode to the same tensors).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/safetensors.h"
#include "kernels/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  eqprop::SafetensorsFile file;
  try {
    file = eqprop::decode_safetensors(bytes, "fuzz.safetensors");
  } catch (const eqprop::Error&) {
    return 0;
  }
  std::string encoded;
  try {
    encoded = eqprop::encode_safetensors(file);
  } catch (const eqprop::Error&) {
    return 0;  // e.g. metadata that is not UTF-8 cannot be written back
  }
  const eqprop::SafetensorsFile again = eqprop::decode_safetensors(encoded, "re-encoded");
  if (again.tensors.size() != file.tensors.size() || again.metadata != file.metadata) std::abort();
  return 0;
}
