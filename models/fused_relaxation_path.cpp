#include "models/fused_relaxation_path.h"

#include <cstdint>
#include <stdexcept>

#include "kernels/transpose.h"

namespace eqprop {

bool takes_fused_path(RelaxationPath path, const char* refusal, bool measured_faster, const std::string& model) {
  if (path == RelaxationPath::gemm) return false;
  if (refusal) {
    if (path == RelaxationPath::fused)
      throw std::invalid_argument(model + ": training.relaxation_path = fused, but the fused path cannot run this "
                                          "phase: " + refusal);
    return false;
  }
  return path == RelaxationPath::fused || measured_faster;
}

void fill_fused_phase(Backend& backend, const ParameterSet& parameters, const std::vector<int>& layers, int states,
                      NetworkState& state, const float* target, const PhaseSpec& spec, int batch, int arrays,
                      std::vector<DeviceBuffer<float>>& weights_transposed, FusedLayeredPhase& phase) {
  const std::vector<int>& n = layers;
  if (weights_transposed.empty())
    for (int i = 0; i + 1 < states; ++i) weights_transposed.emplace_back(backend, std::size_t(n[i + 1]) * n[i + 2]);
  int units_total = 0;
  for (int i = 0; i < states; ++i) {
    phase.states[i] = state.layers[i].data();
    phase.weights[i] = i > 0 ? parameters.weights[i].data() : nullptr;
    phase.bias[i] = parameters.biases[i].data();
    phase.units[i] = n[i + 1];
    units_total += n[i + 1];
    if (i + 1 < states) {
      // W_{i+1}^T (n_{i+2}, n_{i+1}): the feedback read row by row.
      backend.run(TransposeOp{parameters.weights[i + 1].data(), weights_transposed[i].data(), n[i + 1], n[i + 2]},
                  std::int64_t(n[i + 1]) * n[i + 2]);
      phase.weights_transposed[i] = weights_transposed[i].data();
    }
  }
  phase.target = spec.beta != 0.0f ? target : nullptr;
  phase.beta = spec.beta;
  phase.dt = spec.dt;
  phase.layers = states;
  phase.batch = batch;
  phase.systems_per_block =
      FusedRelaxationLaunchPolicy::systems_per_block(backend.traits().has_on_chip_blocks, units_total, arrays);
  phase.steps = spec.steps;
}

}  // namespace eqprop
