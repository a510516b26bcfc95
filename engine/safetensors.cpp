#include "engine/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "engine/atomic_file.h"
#include "models/json_limits.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

using nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw CheckpointError("checkpoint " + path + ": " + what);
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Bytes are assembled explicitly so the file is little-endian on any host.
void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::uint64_t get_le(const std::string& bytes, std::size_t at, int width) {
  std::uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

// A non-negative JSON integer, or a CheckpointError describing `what`.
std::uint64_t get_count(const json& j, const std::string& path, const std::string& what) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer()) fail(path, what + " is negative (" + excerpt_json(j) + ")");
  fail(path, what + " is not an integer (" + excerpt_json(j) + ")");
}

// One tensor's header entry, checked on its own; offsets are checked against the
// others once all entries are read.
struct Entry {
  std::uint64_t begin, end;
  std::string name;
  std::vector<std::int64_t> shape;
};

Entry parse_entry(const std::string& name, const json& j, std::uint64_t data_size,
                  const std::string& path) {
  const std::string where = "tensor '" + excerpt(name) + "'";
  if (!j.is_object()) fail(path, where + " is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) fail(path, where + " has no \"" + key + "\"");
  const json& dtype = j["dtype"];
  if (!dtype.is_string()) fail(path, where + " has a non-string dtype");
  if (dtype != "F32")
    fail(path, where + " has dtype " + excerpt(dtype.get<std::string>()) + "; only F32 is supported");
  const json& shape = j["shape"];
  const json& offsets = j["data_offsets"];
  if (!shape.is_array()) fail(path, where + " has a shape that is not an array");
  if (!offsets.is_array() || offsets.size() != 2)
    fail(path, where + " needs data_offsets [begin, end], found " + excerpt_json(offsets));

  Entry e{get_count(offsets[0], path, where + " offset"),
          get_count(offsets[1], path, where + " offset"),
          name,
          {}};
  if (e.begin > e.end || e.end > data_size)
    fail(path, where + " has data_offsets " + excerpt_json(offsets) + " outside the data section of " +
                   std::to_string(data_size) + " bytes");
  for (const json& d : shape) {
    const std::uint64_t dim = get_count(d, path, where + " dimension");
    if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(path, where + " has dimension " + excerpt_json(d) + " that is too large");
    e.shape.push_back(static_cast<std::int64_t>(dim));
  }
  // Multiply with an overflow check, so a hostile shape cannot wrap around to match.
  std::uint64_t elements = 1;
  if (std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end()) elements = 0;
  for (std::int64_t dim : e.shape) {
    if (elements == 0) break;
    if (elements > std::numeric_limits<std::uint64_t>::max() / 4 / static_cast<std::uint64_t>(dim))
      fail(path, where + " has shape " + shape_string(e.shape) + ", too large for any file");
    elements *= static_cast<std::uint64_t>(dim);
  }
  if (elements * 4 != e.end - e.begin)
    fail(path, where + " has shape " + shape_string(e.shape) + " (" + std::to_string(elements * 4) +
                   " bytes of F32) but data_offsets " + excerpt_json(offsets) + " span " +
                   std::to_string(e.end - e.begin) + " bytes");
  return e;
}

}  // namespace

std::string encode_safetensors(const SafetensorsFile& file) {
  json header = json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    if (name == kMetadataKey)
      throw CheckpointError("safetensors: tensor name __metadata__ is reserved");
    std::int64_t elements = 1;
    for (std::int64_t d : tensor.shape) {
      if (d < 0)
        throw CheckpointError("safetensors: tensor '" + name +
                              "' has negative dimension in shape " + shape_string(tensor.shape));
      elements *= d;
    }
    if (static_cast<std::uint64_t>(elements) != tensor.data.size())
      throw CheckpointError("safetensors: tensor '" + name + "' has shape " +
                            shape_string(tensor.shape) + " but " +
                            std::to_string(tensor.data.size()) + " values");
    const std::uint64_t bytes = 4 * tensor.data.size();
    header[name] = {
        {"dtype", "F32"}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!file.metadata.empty()) header[kMetadataKey] = file.metadata;

  std::string text;
  try {
    text = header.dump();  // strict: a name or value that is not UTF-8 throws
  } catch (const json::exception& e) {
    throw CheckpointError(std::string("safetensors: cannot encode header: ") + e.what());
  }
  // Readers may map the data section as float arrays, so it must start 8-byte aligned.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + text.size() + offset);
  const std::uint64_t n = text.size();
  put_u32(out, static_cast<std::uint32_t>(n & 0xFFFFFFFFu));
  put_u32(out, static_cast<std::uint32_t>(n >> 32));
  out += text;
  for (const auto& [name, tensor] : file.tensors) {
    for (float v : tensor.data) {
      std::uint32_t bits;
      std::memcpy(&bits, &v, 4);  // bit-exact, NaN payloads included
      put_u32(out, bits);
    }
  }
  return out;
}

SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& path) {
  if (bytes.size() < 8)
    fail(path, "file is " + std::to_string(bytes.size()) +
                   " bytes, shorter than the 8-byte header length");
  const std::uint64_t header_size = get_le(bytes, 0, 8);
  if (header_size > bytes.size() - 8)
    fail(path, "header length " + std::to_string(header_size) + " is larger than the " +
                   std::to_string(bytes.size() - 8) + " bytes that follow it");
  json header;
  try {
    header = parse_json_bounded(std::string_view(bytes).substr(8, static_cast<std::size_t>(header_size)));
  } catch (const json::exception& e) {
    fail(path, "header is not valid JSON: " + excerpt(e.what(), 300));  // it quotes the token it read
  } catch (const JsonDepthError& e) {
    fail(path, std::string("header is not a safetensors header: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  const std::size_t data_start = 8 + static_cast<std::size_t>(header_size);
  const std::uint64_t data_size = bytes.size() - data_start;
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key != kMetadataKey) {
      entries.push_back(parse_entry(key, value, data_size, path));
      continue;
    }
    if (!value.is_object()) fail(path, "__metadata__ is not a JSON object");
    for (const auto& [mkey, mvalue] : value.items()) {
      if (!mvalue.is_string()) fail(path, "__metadata__ value '" + excerpt(mkey) + "' is not a string");
      file.metadata[mkey] = mvalue.get<std::string>();
    }
  }

  // The tensors must tile the data section exactly: no overlap, no holes.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  std::uint64_t expected = 0;
  std::string previous = "the start of the data section";
  for (const Entry& e : entries) {
    if (e.begin < expected) fail(path, "tensor '" + excerpt(e.name) + "' overlaps " + previous);
    if (e.begin > expected)
      fail(path, "hole of " + std::to_string(e.begin - expected) + " bytes before tensor '" +
                     excerpt(e.name) + "'");
    expected = e.end;
    previous = "tensor '" + excerpt(e.name) + "'";
  }
  if (expected != data_size)
    fail(path,
         std::to_string(data_size - expected) + " bytes after the last tensor belong to no tensor");

  for (Entry& e : entries) {
    Tensor t;
    t.shape = std::move(e.shape);
    t.data.resize((e.end - e.begin) / 4);
    for (std::size_t i = 0; i < t.data.size(); ++i) {
      const auto bits = static_cast<std::uint32_t>(get_le(bytes, data_start + e.begin + 4 * i, 4));
      std::memcpy(&t.data[i], &bits, 4);
    }
    file.tensors.emplace(std::move(e.name), std::move(t));
  }
  return file;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  write_file_atomically(path, encode_safetensors(file));
}

SafetensorsFile read_safetensors(const std::string& path) {
  // A FIFO or device would block the read or never end; a checkpoint is a file.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    fail(path, "is not a regular file");
  return decode_safetensors(read_file(path), path);
}

const Tensor& require_tensor(const SafetensorsFile& file, const std::string& name,
                             const std::vector<std::int64_t>& expected_shape,
                             const std::string& path) {
  const auto it = file.tensors.find(name);
  if (it == file.tensors.end())
    fail(path, "has no tensor '" + name + "', which the config needs with shape " +
                   shape_string(expected_shape));
  if (it->second.shape != expected_shape)
    fail(path, "tensor '" + name + "' has shape " + shape_string(it->second.shape) +
                   " but the config needs " + shape_string(expected_shape));
  return it->second;
}

}  // namespace eqprop
