// A finished run's epoch records (metrics.jsonl, one JSON object per epoch), for
// the tests that train through the CLI and check what the run reached.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace eqprop {
namespace test {

inline std::vector<nlohmann::json> read_epoch_records(const std::string& run_dir) {
  std::ifstream metrics(run_dir + "/metrics.jsonl");
  std::vector<nlohmann::json> epochs;
  std::string line;
  while (std::getline(metrics, line))
    if (!line.empty()) epochs.push_back(nlohmann::json::parse(line));
  return epochs;
}

}  // namespace test
}  // namespace eqprop
