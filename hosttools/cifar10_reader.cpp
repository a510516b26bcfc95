#include "hosttools/cifar10_reader.h"

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "hosttools/input_file.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

namespace fs = std::filesystem;

constexpr int kSide = 32, kChannels = 3, kNumClasses = 10;
constexpr std::uint64_t kPixelBytes = kChannels * kSide * kSide;  // 3072
constexpr std::uint64_t kRecordBytes = 1 + kPixelBytes;          // 3073

const char* const kTrainFiles[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin"};
const char* const kTestFile = "test_batch.bin";

// Appends the records of one batch file to `out`.
void append_batch(const std::string& path, Dataset& out) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw DataError(path + ": no such file");
  refuse_special_file(path, "a CIFAR-10 batch file");
  const std::uint64_t size = fs::file_size(path, ec);
  if (ec) throw DataError(path + ": cannot read its size: " + ec.message());
  if (size == 0 || size % kRecordBytes != 0)
    throw DataError(path + ": size " + std::to_string(size) +
                    " bytes is not a positive multiple of 3073 bytes (one CIFAR-10 record: "
                    "1 label byte + 3072 pixel bytes)");

  std::vector<std::uint8_t> bytes(size);  // (records, 3073)
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in || static_cast<std::uint64_t>(in.gcount()) != size)
    throw DataError(path + ": cannot read " + std::to_string(size) + " bytes, got " +
                    std::to_string(in.gcount()));

  const std::uint64_t records = size / kRecordBytes;
  for (std::uint64_t r = 0; r < records; ++r) {
    const std::uint8_t* record = bytes.data() + r * kRecordBytes;
    if (record[0] >= kNumClasses)
      throw DataError(path + ": label " + std::to_string(record[0]) + " in record " +
                      std::to_string(r) + " is above 9");
    out.labels.push_back(record[0]);
    out.pixels.insert(out.pixels.end(), record + 1, record + kRecordBytes);
  }
}

// The files of `names` missing from `dir`, as a comma-separated list ("" if none).
std::string missing_in(const fs::path& dir, const std::vector<std::string>& names) {
  std::string missing;
  for (const auto& name : names) {
    std::error_code ec;
    if (fs::is_regular_file(dir / name, ec)) continue;
    missing += (missing.empty() ? "" : ", ") + name;
  }
  return missing;
}

}  // namespace

Dataset read_cifar10_batches(const std::vector<std::string>& paths) {
  if (paths.empty()) throw DataError("CIFAR-10: no batch files given");
  Dataset out;
  out.sample_shape = {kChannels, kSide, kSide};
  out.num_classes = kNumClasses;
  // Reserve from the file sizes so the concatenation copies each byte once.
  std::uint64_t total = 0;
  for (const auto& path : paths) {
    std::error_code ec;
    const std::uint64_t size = fs::file_size(path, ec);
    if (!ec) total += size / kRecordBytes;
  }
  out.labels.reserve(total);                 // (count)
  out.pixels.reserve(total * kPixelBytes);   // (count, 3, 32, 32)
  for (const auto& path : paths) append_batch(path, out);
  return out;
}

DatasetSplits read_cifar10_dir(const std::string& dir) {
  std::vector<std::string> names(std::begin(kTrainFiles), std::end(kTrainFiles));
  names.push_back(kTestFile);
  const fs::path candidates[] = {fs::path(dir), fs::path(dir) / "cifar-10-batches-bin"};

  std::string report;
  for (const auto& folder : candidates) {
    const std::string missing = missing_in(folder, names);
    if (missing.empty()) {
      std::vector<std::string> train;
      for (const char* name : kTrainFiles) train.push_back((folder / name).string());
      return {read_cifar10_batches(train), read_cifar10_batches({(folder / kTestFile).string()})};
    }
    std::error_code ec;
    report += "; in " + folder.string() + ": " +
              (fs::is_directory(folder, ec) ? "missing " + missing : "no such directory");
  }
  throw DataError("CIFAR-10 binary files not found: looked for data_batch_1.bin .. "
                  "data_batch_5.bin and test_batch.bin in " + dir + " and in " +
                  candidates[1].string() + report);
}

}  // namespace eqprop
