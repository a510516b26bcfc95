// The declaration of one run-config key (type, default, range, choices, help) and
// the name <-> enum tables of choice keys. engine/config.cpp holds the schema of
// the run-wide sections; each model kind declares its own section's keys with the
// same type (models/model_registry.h), and the schema merges them, so every key is
// validated, overridden with --set and documented in README.md alike.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "models/json_limits.h"

namespace eqprop {

// integer_pairs: a list, possibly empty, of [a, b] integer pairs (e.g. the layers
// a skip coupling joins).
enum class ConfigValueType { integer, number, boolean, string, choice, integer_list, number_or_list, integer_pairs };

struct ConfigKey {
  std::string key;  // dotted: section.name
  ConfigValueType type;
  nlohmann::json default_value;
  double min = -HUGE_VAL;  // inclusive bounds
  double max = HUGE_VAL;
  bool min_exclusive = false;
  std::vector<std::string> choices;
  std::string help;
};

// One entry of a choice key's table: the name a config writes and the value it
// parses into. Each choice key has exactly one table; the schema's choices are its
// names, so parsing cannot meet a name the schema let through but the table lacks.
template <typename T>
struct Choice {
  const char* name;
  T value;
};

template <typename T, std::size_t N>
std::vector<std::string> choice_names(const Choice<T> (&table)[N]) {
  std::vector<std::string> names;
  for (const Choice<T>& choice : table) names.push_back(choice.name);
  return names;
}

// The value of a resolved (schema-checked) choice; ConfigError naming `key` for a
// name outside the table.
template <typename T, std::size_t N>
T choice_value(const Choice<T> (&table)[N], const nlohmann::json& value, const std::string& key) {
  for (const Choice<T>& choice : table)
    if (value.is_string() && value.get<std::string>() == choice.name) return choice.value;
  throw ConfigError(key + " = " + excerpt_json(value) + " is not one of its choices");
}

// The name of a value (for messages and reports).
template <typename T, std::size_t N>
std::string choice_name(const Choice<T> (&table)[N], T value) {
  for (const Choice<T>& choice : table)
    if (choice.value == value) return choice.name;
  return "?";
}

// A choice key declared from its table: the default is the table's first entry.
template <typename T, std::size_t N>
ConfigKey choice_key(std::string key, const Choice<T> (&table)[N], std::string help) {
  return ConfigKey{std::move(key), ConfigValueType::choice, table[0].name, 0, 0, false, choice_names(table),
                   std::move(help)};
}

}  // namespace eqprop
