// Command-line plumbing shared by the eqprop commands: "--flag value" parsing with
// one clear UsageError per mistake, and the config every command builds from
// --config FILE, --set key=value and --device.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "kernels/error.h"

namespace eqprop {

// A mistake on the command line (exit code 2).
class UsageError : public Error {
 public:
  using Error::Error;
};

struct Options {
  std::map<std::string, std::string> values;               // the last value of each flag
  std::map<std::string, std::vector<std::string>> repeated;  // every value of a repeatable flag

  bool has(const std::string& flag) const { return values.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& flag) const;
};

// Parses args[first..] for `eqprop args[0]`: flags in `allowed` take a value, those in
// `switches` do not, those in `repeatable` may appear more than once (--set always).
Options parse_options(const std::vector<std::string>& args, std::size_t first, const std::vector<std::string>& allowed,
                      const std::vector<std::string>& switches = {},
                      const std::vector<std::string>& repeatable = {});

// The value of `flag` as a positive integer, or `fallback` when absent.
int parse_positive(const Options& options, const std::string& flag, int fallback);

// `user` (a partial config) with the --set overrides and --device applied, parsed;
// `base` as in parse_config (a checkpoint's config.json, whose keys are not the user's).
Config load_config(const Options& options, nlohmann::json user, const std::string& source,
                   const nlohmann::json& base = nlohmann::json::object());
// The same from --config FILE, or from the defaults when it is absent and not required.
Config config_from_options(const Options& options, bool required);
// The partial config of --config FILE (or {}), before overrides.
nlohmann::json user_config_from_options(const Options& options, bool required);

}  // namespace eqprop
