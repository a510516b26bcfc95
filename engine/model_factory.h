// Builds the EnergyModel a config names (model.kind, a kind of
// models/model_registry.h), sized for `max_batch` systems, its parameters not yet
// initialized.
#pragma once

#include <memory>

#include "engine/config.h"
#include "models/energy_model.h"

namespace eqprop {

std::unique_ptr<EnergyModel> make_model(Backend& backend, const Config& config, int max_batch);

// The relaxation the config's model runs, in words: dynamics.integrator, or what its
// kind runs instead (an Ising network: annealing with its spin update, or dsb).
std::string relaxation_name(const Config& config);

// The model in one line for run headers: its kind, model.layers and the sections of
// its kind that give the rest of its shape (a conv network's channels, kernels,
// padding and pooling; an Ising network's spins per class).
std::string model_summary(const Config& config);

}  // namespace eqprop
