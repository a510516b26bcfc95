// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors),
// so PyTorch and NumPy users can open them with safetensors.torch.load_file.
// Layout: u64 little-endian header length N; N bytes of JSON mapping each tensor name
// to {"dtype","shape","data_offsets"} plus an optional "__metadata__" of strings,
// space-padded so the data starts 8-byte aligned; then the tensors back to back.
// Only float32 ("F32") is supported: it is all eqprop stores.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace eqprop {

struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;  // (prod(shape)), row-major
};

struct SafetensorsFile {
  // std::map, so tensors are laid out in name order and encoding is deterministic.
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Throws CheckpointError if a tensor's data size does not match its shape.
std::string encode_safetensors(const SafetensorsFile& file);

// Validates everything the header claims; throws CheckpointError naming
// `path_for_messages` and the first problem found.
SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& path_for_messages);

void write_safetensors(const std::string& path, const SafetensorsFile& file);  // atomic
SafetensorsFile read_safetensors(const std::string& path);

// The tensor `name`, which must exist and have exactly `expected_shape`; otherwise a
// CheckpointError that says what the checkpoint has and what the config needs.
const Tensor& require_tensor(const SafetensorsFile& file, const std::string& name,
                             const std::vector<std::int64_t>& expected_shape,
                             const std::string& path_for_messages);

}  // namespace eqprop
