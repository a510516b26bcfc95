// What the layered models with a fused relaxation (kernels/fused_layered_phase.h)
// share on the host side: the choice between the fused path and the GEMM path
// (training.relaxation_path, models/model_config.h) and the filling of a fused
// body's common part for one phase.
#pragma once

#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/fused_layered_phase.h"
#include "models/energy_model.h"
#include "models/model_config.h"

namespace eqprop {

// Whether a phase runs on the fused path. `refusal`: why the fused path cannot run
// it (null when it can); `measured_faster`: auto's evidence. `fused` with a refusal
// throws std::invalid_argument naming `model` and the reason; `gemm` never fuses;
// `auto` fuses where allowed and measured faster.
bool takes_fused_path(RelaxationPath path, const char* refusal, bool measured_faster, const std::string& model);

// Fills phase's couplings, geometry and nudge for rows [0, batch) of `state`:
// layers = the model's widths, input first, its state layers layers[1..states];
// weights[l] (layers[l], layers[l+1]) and biases[l] the model's parameters. The
// feedback reads W_{i+1}^T, copied here into `weights_transposed` (allocated on the
// first call; the parameters change between phases, so every phase takes a fresh
// copy: n^2 against the phase's batch * steps * n^2). `arrays`: the body's shared
// floats per element, for the launch shape.
void fill_fused_phase(Backend& backend, const ParameterSet& parameters, const std::vector<int>& layers, int states,
                      NetworkState& state, const float* target, const PhaseSpec& spec, int batch, int arrays,
                      std::vector<DeviceBuffer<float>>& weights_transposed, FusedLayeredPhase& phase);

}  // namespace eqprop
