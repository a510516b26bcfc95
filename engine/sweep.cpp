#include "engine/sweep.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "engine/checkpoint.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

std::vector<std::string> overrides_of(const SweepSpec& spec, std::size_t variant, std::size_t index) {
  std::vector<std::string> result;
  if (variant < spec.variants.size()) result = spec.variants[variant].second;
  result.push_back(spec.key + "=" + spec.values[index]);
  for (const auto& [key, values] : spec.tied) result.push_back(key + "=" + values[index]);
  return result;
}

// A directory name from "key=value": letters, digits and . _ - = kept.
std::string directory_name(const std::string& text) {
  std::string name;
  for (char c : text) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '=') ? c : '_';
  return name;
}

EpochRecord last_record(const std::string& run_dir, double& seconds) {
  std::ifstream metrics(std::filesystem::path(run_dir) / kMetricsFile);
  EpochRecord record;
  seconds = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto json = nlohmann::json::parse(line, nullptr, false);
    if (!json.is_object()) continue;
    record.epoch = json.value("epoch", 0);
    record.train_loss = json.value("train_loss", 0.0);
    record.train_acc = json.value("train_acc", 0.0);
    record.test_loss = json.value("test_loss", 0.0);
    record.test_acc = json.value("test_acc", 0.0);
    record.free_energy_mean = json.value("free_energy_mean", 0.0);
    record.free_steps_mean = json.value("free_steps_mean", 0.0);
    record.nudge_steps_mean = json.value("nudge_steps_mean", 0.0);
    seconds += json.value("seconds", 0.0);
  }
  return record;
}

// The resolved-config keys ("optimizer.lr") in which the run in `run_dir` differs
// from `config`; empty when it was trained with exactly this config.
std::vector<std::string> changed_keys(const std::filesystem::path& run_dir, const Config& config) {
  nlohmann::json stored;
  try {
    stored = read_checkpoint_config(run_dir.string());
  } catch (const Error&) {
    return {"config.json (unreadable)"};
  }
  std::vector<std::string> keys;
  for (const auto& change : nlohmann::json::diff(stored, config.resolved)) {
    std::string key = change["path"].get<std::string>().substr(1);
    std::replace(key.begin(), key.end(), '/', '.');
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  return keys;
}

}  // namespace

void validate_sweep(const nlohmann::json& user, const SweepSpec& spec) {
  if (spec.key.empty() || spec.values.empty()) throw ConfigError("--sweep KEY=V1,V2,... needs a key and values");
  for (const auto& [key, values] : spec.tied)
    if (values.size() != spec.values.size())
      throw ConfigError("--with " + key + " has " + std::to_string(values.size()) + " values but --sweep " + spec.key +
                        " has " + std::to_string(spec.values.size()));
  const std::size_t variants = std::max<std::size_t>(1, spec.variants.size());
  for (std::size_t v = 0; v < variants; ++v)
    for (std::size_t i = 0; i < spec.values.size(); ++i) {
      nlohmann::json config = user;
      for (const std::string& assignment : overrides_of(spec, v, i)) apply_override(config, assignment);
      parse_config(config, "sweep point " + spec.key + "=" + spec.values[i]);
    }
}

std::vector<SweepPoint> run_sweep(Backend& backend, const nlohmann::json& user, const std::string& source,
                                  const SweepSpec& spec, const DatasetSplits& data, const std::string& out_dir,
                                  const RunCallbacks& callbacks,
                                  const std::function<void(const SweepPoint&)>& on_point) {
  validate_sweep(user, spec);
  std::vector<SweepPoint> points;
  const std::size_t variants = std::max<std::size_t>(1, spec.variants.size());
  for (std::size_t v = 0; v < variants; ++v)
    for (std::size_t i = 0; i < spec.values.size(); ++i) {
      nlohmann::json config_json = user;
      for (const std::string& assignment : overrides_of(spec, v, i)) apply_override(config_json, assignment);
      const Config config = parse_config(config_json, source);
      SweepPoint point;
      point.variant = v < spec.variants.size() ? spec.variants[v].first : "";
      point.value = spec.values[i];
      for (const auto& tied : spec.tied) point.tied.push_back(tied.second[i]);
      std::filesystem::path dir(out_dir);
      if (!point.variant.empty()) dir /= directory_name(point.variant);
      dir /= directory_name(spec.key + "=" + point.value);
      point.run_dir = dir.string();
      // An earlier run in the directory is continued (or, finished, reused) only if
      // it had exactly this resolved config; otherwise it is trained again from the
      // start, its checkpoint removed first so an interruption cannot mix the two.
      std::error_code missing;
      bool resume = std::filesystem::exists(dir / kModelFile, missing);
      if (resume) {
        const std::vector<std::string> changed = changed_keys(dir, config);
        for (const std::string& key : changed) point.retrained_because += (point.retrained_because.empty() ? "" : ", ") + key;
        if (!changed.empty()) {
          std::filesystem::remove(dir / kModelFile, missing);
          resume = false;
        }
      }
      run_training(backend, config, data, point.run_dir, resume, callbacks);
      point.last = last_record(point.run_dir, point.seconds);
      points.push_back(point);
      if (on_point) on_point(point);
    }
  return points;
}

void create_output_directory(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) throw CheckpointError("cannot create output directory " + dir + ": " + error.message());
}

namespace {

// `text` as a whole finite number (strtod reads all of it), else false.
bool parse_number(const std::string& text, double& value) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(value);
}

}  // namespace

std::vector<std::string> sweep_range_values(const std::string& range) {
  const std::size_t first = range.find(':');
  const std::size_t second = first == std::string::npos ? std::string::npos : range.find(':', first + 1);
  const std::string usage = "'" + range + "': expected A:B (integers) or A:B:STEP with A <= B and STEP > 0";
  if (first == std::string::npos || (second != std::string::npos && range.find(':', second + 1) != std::string::npos))
    throw ConfigError(usage);
  double a = 0, b = 0, step = 1;
  const std::string b_text = range.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
  if (!parse_number(range.substr(0, first), a) || !parse_number(b_text, b) || b < a) throw ConfigError(usage);
  std::vector<std::string> values;
  if (second == std::string::npos) {
    // Integer ranges keep their exact decimal text (a seed beyond 2^53 included).
    std::size_t used_a = 0, used_b = 0;
    long long from = 0, to = 0;
    try {
      from = std::stoll(range.substr(0, first), &used_a);
      to = std::stoll(b_text, &used_b);
    } catch (const std::exception&) {
      throw ConfigError(usage + " (a range of non-integers needs a STEP)");
    }
    if (used_a != first || used_b != b_text.size()) throw ConfigError(usage + " (a range of non-integers needs a STEP)");
    if (b - a >= static_cast<double>(kMaxSweepRangeValues))
      throw ConfigError(usage + ": more than " + std::to_string(kMaxSweepRangeValues) + " values");
    for (long long v = from; v <= to; ++v) values.push_back(std::to_string(v));
    return values;
  }
  if (!parse_number(range.substr(second + 1), step) || step <= 0) throw ConfigError(usage);
  // (B - A) / STEP is a whole number up to rounding: 0.1 / 0.01 = 10.000000000000002.
  const double steps = std::floor((b - a) / step * (1 + 1e-9) + 1e-9);
  if (!(steps < static_cast<double>(kMaxSweepRangeValues)))
    throw ConfigError(usage + ": more than " + std::to_string(kMaxSweepRangeValues) + " values");
  for (int i = 0; i <= static_cast<int>(steps); ++i) {
    std::ostringstream text;
    text << std::setprecision(12) << a + i * step;
    values.push_back(text.str());
  }
  return values;
}

std::string sweep_csv(const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  std::ostringstream csv;
  csv << "variant," << spec.key;
  for (const auto& tied : spec.tied) csv << "," << tied.first;
  csv << ",epochs,test_acc,test_loss,train_acc,train_loss,free_energy_mean,free_steps_mean,nudge_steps_mean,seconds\n";
  for (const SweepPoint& p : points) {
    csv << p.variant << "," << p.value;
    for (const std::string& value : p.tied) csv << "," << value;
    csv << "," << p.last.epoch << "," << p.last.test_acc << "," << p.last.test_loss << "," << p.last.train_acc << ","
        << p.last.train_loss << "," << p.last.free_energy_mean << "," << p.last.free_steps_mean << ","
        << p.last.nudge_steps_mean << "," << p.seconds << "\n";
  }
  return csv.str();
}

}  // namespace eqprop
