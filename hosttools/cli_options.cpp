#include "hosttools/cli_options.h"

#include <algorithm>

namespace eqprop {

std::string Options::get(const std::string& flag, const std::string& fallback) const {
  const auto it = values.find(flag);
  return it == values.end() ? fallback : it->second;
}

std::vector<std::string> Options::all(const std::string& flag) const {
  const auto it = repeated.find(flag);
  return it == repeated.end() ? std::vector<std::string>{} : it->second;
}

Options parse_options(const std::vector<std::string>& args, std::size_t first, const std::vector<std::string>& allowed,
                      const std::vector<std::string>& switches, const std::vector<std::string>& repeatable) {
  auto contains = [](const std::vector<std::string>& list, const std::string& flag) {
    return std::find(list.begin(), list.end(), flag) != list.end();
  };
  Options options;
  for (std::size_t i = first; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (contains(switches, flag)) {
      options.values[flag] = "1";
      continue;
    }
    if (!contains(allowed, flag))
      throw UsageError("unknown option '" + flag + "' for 'eqprop " + args[0] + "' (see eqprop help)");
    if (i + 1 >= args.size()) throw UsageError("option " + flag + " needs a value");
    const std::string& value = args[++i];
    if (flag == "--set" || contains(repeatable, flag)) {
      options.repeated[flag].push_back(value);
    } else if (options.has(flag)) {
      throw UsageError("option " + flag + " is given twice");
    }
    options.values[flag] = value;
  }
  return options;
}

int parse_positive(const Options& options, const std::string& flag, int fallback) {
  if (!options.has(flag)) return fallback;
  const std::string text = options.get(flag);
  try {
    std::size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == text.size() && value > 0) return value;
  } catch (const std::exception&) {
  }
  throw UsageError(flag + " " + text + ": expected a positive integer");
}

Config load_config(const Options& options, nlohmann::json user, const std::string& source,
                   const nlohmann::json& base) {
  for (const std::string& assignment : options.all("--set")) apply_override(user, assignment);
  if (options.has("--device")) apply_override(user, "device=" + options.get("--device"));
  return parse_config(user, source, base);
}

nlohmann::json user_config_from_options(const Options& options, bool required) {
  if (options.has("--config")) return read_config_file(options.get("--config"));
  if (required) throw UsageError("--config FILE is required (ready configs are in configs/)");
  return nlohmann::json::object();
}

Config config_from_options(const Options& options, bool required) {
  return load_config(options, user_config_from_options(options, required), options.get("--config", "defaults"));
}

}  // namespace eqprop
