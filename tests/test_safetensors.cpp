// Safetensors checkpoints and atomic writes: bit-exact round trips, the on-disk
// layout other readers rely on, and a clear CheckpointError for each kind of damage.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/atomic_file.h"
#include "engine/safetensors.h"
#include "kernels/error.h"

namespace fs = std::filesystem;
using eqprop::CheckpointError;

namespace {

// A fresh directory under the system temp dir, removed with everything in it.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("eqprop_test_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// The message of the CheckpointError that `f` throws ("" if it throws none).
template <class F>
std::string checkpoint_error(F&& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

// A raw file: little-endian u64 length, the header text as given, then `data_bytes` zeros.
std::string raw_file(const std::string& header, std::size_t data_bytes) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  return out + header + std::string(data_bytes, '\0');
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

eqprop::SafetensorsFile sample_file() {
  eqprop::SafetensorsFile f;
  f.tensors["weights.0"] = {{2, 3}, {1.5f, -2.25f, 0.0f, -0.0f, 1e-30f, 3.14159265f}};
  f.tensors["bias.0"] = {
      {3},
      {std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
       std::numeric_limits<float>::infinity()}};
  f.tensors["step"] = {{1}, {42.0f}};
  f.metadata["config"] = "{\"layers\": [784, 500, 10]}";
  f.metadata["format"] = "eqprop";
  return f;
}

}  // namespace

TEST_CASE("safetensors round trip is bit-exact for tensors and metadata") {
  const auto original = sample_file();
  const auto decoded = eqprop::decode_safetensors(eqprop::encode_safetensors(original), "mem");
  CHECK(decoded.metadata == original.metadata);
  REQUIRE(decoded.tensors.size() == original.tensors.size());
  for (const auto& [name, tensor] : original.tensors) {
    CAPTURE(name);
    REQUIRE(decoded.tensors.count(name) == 1);
    CHECK(decoded.tensors.at(name).shape == tensor.shape);
    CHECK(same_bits(decoded.tensors.at(name).data, tensor.data));
  }

  ScratchDir dir;
  const std::string path = dir.file("model.safetensors");
  eqprop::write_safetensors(path, original);
  const auto from_disk = eqprop::read_safetensors(path);
  CHECK(same_bits(from_disk.tensors.at("weights.0").data, original.tensors.at("weights.0").data));
  CHECK(from_disk.metadata == original.metadata);
}

TEST_CASE("safetensors header is aligned JSON with contiguous name-ordered offsets") {
  const std::string bytes = eqprop::encode_safetensors(sample_file());
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK((8 + n) % 8 == 0);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  // Name order: bias.0 (3 floats), step (1), weights.0 (6).
  CHECK(header["bias.0"]["dtype"] == "F32");
  CHECK(header["bias.0"]["data_offsets"] == nlohmann::json({0, 12}));
  CHECK(header["step"]["data_offsets"] == nlohmann::json({12, 16}));
  CHECK(header["step"]["shape"] == nlohmann::json({1}));
  CHECK(header["weights.0"]["data_offsets"] == nlohmann::json({16, 40}));
  CHECK(header["weights.0"]["shape"] == nlohmann::json({2, 3}));
  CHECK(header["__metadata__"]["format"] == "eqprop");
  CHECK(bytes.size() == 8 + n + 40);
  float first;  // bias.0[0], little-endian right after the header
  std::memcpy(&first, bytes.data() + 8 + n, 4);
  CHECK(first == std::numeric_limits<float>::denorm_min());
}

TEST_CASE("safetensors decoding rejects each kind of damage with a CheckpointError") {
  auto decode = [](const std::string& bytes) {
    return checkpoint_error([&] { eqprop::decode_safetensors(bytes, "bad.safetensors"); });
  };
  auto has = [](const std::string& message, const std::string& part) {
    INFO(message);
    CHECK(message.find("bad.safetensors") != std::string::npos);
    CHECK(message.find(part) != std::string::npos);
  };
  const std::string w = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  REQUIRE(decode(raw_file("{" + w + "}", 8)).empty());  // the baseline is valid

  has(decode("abc"), "shorter than");
  std::string long_header = raw_file("{}", 0);
  long_header[0] = 100;
  has(decode(long_header), "header length 100");
  has(decode(raw_file("{not json", 0)), "not valid JSON");
  has(decode(raw_file("[1, 2]", 0)), "not a JSON object");
  has(decode(raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", 8)), "no \"data_offsets\"");
  has(decode(raw_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8)), "no \"dtype\"");
  has(decode(raw_file(R"({"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", 8)),
      "dtype F16");
  has(decode(raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
      "span 8 bytes");
  has(decode(raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)),
      "outside the data");
  has(decode(raw_file(R"({"w":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})", 8)),
      "negative");
  has(decode(raw_file(
          R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
      "too large");
  has(decode(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      12)),
      "overlaps");
  has(decode(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                      12)),
      "hole");
  has(decode(raw_file("{" + w + "}", 12)), "belong to no tensor");
  has(decode(raw_file(R"({"__metadata__":{"epoch":3}})", 0)), "not a string");
}

TEST_CASE("safetensors encoding rejects data that does not match the shape") {
  eqprop::SafetensorsFile f;
  f.tensors["w"] = {{2, 2}, {1.0f, 2.0f, 3.0f}};
  CHECK(checkpoint_error([&] { eqprop::encode_safetensors(f); }).find("3 values") !=
        std::string::npos);
}

TEST_CASE("require_tensor names the tensor and both shapes") {
  eqprop::SafetensorsFile f;
  f.tensors["weights.1"] = {{784, 500}, std::vector<float>(784 * 500)};
  CHECK(eqprop::require_tensor(f, "weights.1", {784, 500}, "model.safetensors").data.size() ==
        784 * 500);
  CHECK(checkpoint_error([&] {
          eqprop::require_tensor(f, "weights.1", {784, 300}, "model.safetensors");
        }) ==
        "checkpoint model.safetensors: tensor 'weights.1' has shape [784, 500] but the config "
        "needs [784, 300]");
  const std::string missing =
      checkpoint_error([&] { eqprop::require_tensor(f, "bias.1", {300}, "model.safetensors"); });
  CHECK(missing.find("'bias.1'") != std::string::npos);
}

TEST_CASE("write_file_atomically replaces the file and leaves no temp file") {
  ScratchDir dir;
  const std::string path = dir.file("state.bin");
  eqprop::write_file_atomically(path, "old contents that are longer");
  eqprop::write_file_atomically(path, std::string("new\0bytes", 9));
  CHECK(eqprop::read_file(path) == std::string("new\0bytes", 9));
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    CAPTURE(entry.path().string());
    CHECK(entry.path().filename() == "state.bin");
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("file errors name the path") {
  ScratchDir dir;
  const std::string nowhere = dir.file("no_such_dir/model.safetensors");
  const std::string write_error =
      checkpoint_error([&] { eqprop::write_file_atomically(nowhere, "x"); });
  CHECK(write_error.find(nowhere) != std::string::npos);
  CHECK(write_error.find(std::strerror(ENOENT)) != std::string::npos);
  CHECK(checkpoint_error([&] { eqprop::read_file(nowhere); }).find(nowhere) != std::string::npos);
  CHECK(checkpoint_error([&] {
          eqprop::read_safetensors(dir.path.string());
        }).find(dir.path.string()) != std::string::npos);
}
