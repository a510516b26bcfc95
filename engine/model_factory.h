// Builds the EnergyModel a config names (model.kind), sized for `max_batch`
// systems, its parameters not yet initialized.
#pragma once

#include <memory>

#include "engine/config.h"
#include "models/conv_hopfield.h"
#include "models/energy_model.h"

namespace eqprop {

// The conv network a model config describes (model.kind = "conv_hopfield"), not yet validated.
ConvHopfieldShape conv_hopfield_shape(const ModelConfig& model);

std::unique_ptr<EnergyModel> make_model(Backend& backend, const Config& config, int max_batch);

}  // namespace eqprop
