#include "engine/run_directory.h"

#include <omp.h>

#include <filesystem>
#include <optional>
#include <utility>

#include "engine/atomic_file.h"
#include "engine/benchmark.h"
#include "engine/checkpoint.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

// The files whose presence means a run lives in the directory.
const char* const kRunFiles[] = {kConfigFile, kMetricsFile, kModelFile, kBestModelFile};
// Derived from a run: replaced along with it.
const char* const kDerivedFiles[] = {kRunRecordFile, "learning_curve.svg", "learning_curve.png"};

std::string run_record_path(const std::string& dir) {
  return (std::filesystem::path(dir) / kRunRecordFile).string();
}

// The record at `path` with its list of starts, or nothing where the file is
// missing or unreadable (such a record is replaced rather than failing the run).
std::optional<nlohmann::json> read_run_record(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  nlohmann::json record = nlohmann::json::parse(read_file(path), nullptr, false);
  if (!record.is_object() || !record.contains("starts") || !record["starts"].is_array()) return std::nullopt;
  return record;
}

}  // namespace

bool holds_run(const std::string& dir) {
  std::error_code error;
  for (const char* file : kRunFiles)
    if (std::filesystem::exists(std::filesystem::path(dir) / file, error)) return true;
  return false;
}

void remove_run_files(const std::string& dir) {
  std::vector<const char*> files(std::begin(kRunFiles), std::end(kRunFiles));
  files.insert(files.end(), std::begin(kDerivedFiles), std::end(kDerivedFiles));
  for (const char* file : files) {
    const std::filesystem::path path = std::filesystem::path(dir) / file;
    std::error_code error;
    std::filesystem::remove(path, error);
    if (error) throw CheckpointError("cannot remove " + path.string() + " of the earlier run: " + error.message());
  }
}

nlohmann::json run_start_record(const std::string& backend, const std::string& device, int ranks, int from_epoch) {
  return {{"from_epoch", from_epoch}, {"threads", omp_get_max_threads()}, {"ranks", ranks},
          {"backend", backend},       {"device", device},                 {"eqprop", build_info_json()}};
}

void record_run_start(const std::string& dir, const nlohmann::json& start, bool fresh) {
  const std::string path = run_record_path(dir);
  nlohmann::json record = {{"starts", nlohmann::json::array()}};
  if (!fresh)
    if (std::optional<nlohmann::json> old = read_run_record(path)) record = std::move(*old);
  record["starts"].push_back(start);
  write_file_atomically(path, record.dump(2) + "\n");
}

void update_run_start(const std::string& dir, const std::string& key, const nlohmann::json& value) {
  const std::string path = run_record_path(dir);
  std::optional<nlohmann::json> record = read_run_record(path);
  if (!record || (*record)["starts"].empty()) return;
  (*record)["starts"].back()[key] = value;
  write_file_atomically(path, record->dump(2) + "\n");
}

}  // namespace eqprop
