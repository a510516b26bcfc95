// Builds the EnergyModel a config names (model.kind, a kind of
// models/model_registry.h), sized for `max_batch` systems, its parameters not yet
// initialized.
#pragma once

#include <memory>

#include "engine/config.h"
#include "models/energy_model.h"

namespace eqprop {

std::unique_ptr<EnergyModel> make_model(Backend& backend, const Config& config, int max_batch);

}  // namespace eqprop
