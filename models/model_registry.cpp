#include "models/model_registry.h"

#include <algorithm>

#include "kernels/error.h"
#include "models/json_limits.h"

namespace eqprop {

// The built-in kinds, one line each; each is declared next to its model
// (models/*_registration.cpp). Listed here, not registered by static objects, so
// that linking the static library keeps them all.
ModelKind dense_hopfield_kind();
ModelKind conv_hopfield_kind();
ModelKind oscillator_kind();
ModelKind ising_kind();
ModelKind predictive_coding_kind();
ModelKind conv_predictive_coding_kind();

namespace {

struct Registry {
  std::vector<ModelKind> kinds;
  std::size_t generation = 0;
};

Registry& registry() {
  static Registry instance = [] {
    Registry built;
    for (ModelKind (*kind)() : {dense_hopfield_kind, conv_hopfield_kind, oscillator_kind, ising_kind,
                                   predictive_coding_kind, conv_predictive_coding_kind})
      built.kinds.push_back(kind());
    return built;
  }();
  return instance;
}

std::string known_kinds() {
  std::string names;
  for (const ModelKind& kind : model_kinds()) names += (names.empty() ? "" : ", ") + kind.name;
  return names;
}

}  // namespace

std::string ModelRulesInput::quoted(const std::string& dotted_key) const {
  std::string pointer = "/" + dotted_key;
  std::replace(pointer.begin(), pointer.end(), '.', '/');
  return excerpt_json(resolved.at(nlohmann::json::json_pointer(pointer)));
}

std::size_t layers_from_input(CostKind cost) { return cost == CostKind::cross_entropy ? 3 : 2; }

std::size_t weight_tensors_between_layers(const ModelConfig& model) { return model.layers.size() - 1; }

// 0: optimizer.lr's list is checked against the built model (the trainer).
std::size_t weight_tensors_known_when_built(const ModelConfig&) { return 0; }

const std::vector<ModelKind>& model_kinds() { return registry().kinds; }

const ModelKind& model_kind(const std::string& name) {
  for (const ModelKind& kind : model_kinds())
    if (kind.name == name) return kind;
  throw ConfigError("model.kind = \"" + name + "\" is not a model this build knows (known: " + known_kinds() + ")");
}

void register_model_kind(ModelKind kind) {
  Registry& r = registry();
  for (const ModelKind& known : r.kinds) {
    if (known.name == kind.name) throw ConfigError("model kind \"" + kind.name + "\" is registered twice");
    for (const ConfigKey& key : kind.keys)
      for (const ConfigKey& taken : known.keys)
        if (key.key == taken.key)
          throw ConfigError("model kind \"" + kind.name + "\" declares " + key.key + ", a key of \"" +
                            known.name + "\"");
  }
  r.kinds.push_back(std::move(kind));
  ++r.generation;
}

void unregister_model_kind(const std::string& name) {
  Registry& r = registry();
  const auto it =
      std::find_if(r.kinds.begin(), r.kinds.end(), [&](const ModelKind& kind) { return kind.name == name; });
  if (it == r.kinds.end()) return;
  r.kinds.erase(it);
  ++r.generation;
}

std::size_t model_registry_generation() { return registry().generation; }

}  // namespace eqprop
