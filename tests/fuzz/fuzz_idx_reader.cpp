// libFuzzer target: read_idx_dataset on an images file and a labels file, raw or
// gzip. Input layout: u16 little-endian length k, then k bytes of the images file,
// then the labels file (the seed corpus of write_seed_corpus.py uses it).
#include <cstdint>
#include <algorithm>

#include "hosttools/idx_reader.h"
#include "kernels/error.h"
#include "tests/fuzz/fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t images_size = std::min<std::size_t>(data[0] | (std::size_t{data[1]} << 8), size - 2);
  const std::string& images = eqprop::fuzz::write_input("idx_images", data + 2, images_size);
  const std::string& labels = eqprop::fuzz::write_input("idx_labels", data + 2 + images_size, size - 2 - images_size);
  try {
    eqprop::read_idx_dataset(images, labels, 10);
  } catch (const eqprop::Error&) {
  }
  return 0;
}
