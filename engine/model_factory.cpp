#include "engine/model_factory.h"

#include "models/model_registry.h"

namespace eqprop {

std::unique_ptr<EnergyModel> make_model(Backend& backend, const Config& config, int max_batch) {
  return model_kind(config.model.kind).make(backend, config.model, max_batch);
}

}  // namespace eqprop
