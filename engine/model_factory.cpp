#include "engine/model_factory.h"

#include "models/model_registry.h"

namespace eqprop {

std::unique_ptr<EnergyModel> make_model(Backend& backend, const Config& config, int max_batch) {
  return model_kind(config.model.kind).make(backend, config.model, max_batch);
}

std::string relaxation_name(const Config& config) {
  const ModelKind& kind = model_kind(config.model.kind);
  if (kind.relaxation) return kind.relaxation(config.resolved);
  return config.resolved["dynamics"]["integrator"].get<std::string>();
}

std::string model_summary(const Config& config) {
  std::string summary = config.model.kind + ", layers " + config.resolved["model"]["layers"].dump();
  for (const std::string& section : model_kind(config.model.kind).reported_sections)
    summary += ", " + section + " " + config.resolved[section].dump();
  return summary;
}

}  // namespace eqprop
