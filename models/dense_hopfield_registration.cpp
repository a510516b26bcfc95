// model.kind = "dense_hopfield": the layered Hopfield network (models/dense_hopfield.h).

#include "kernels/error.h"
#include "models/dense_hopfield.h"
#include "models/dense_hopfield_reference.h"
#include "models/model_registry.h"

namespace eqprop {
namespace {

void check_rules(const ModelRulesInput& in) {
  // At -beta the nudged energy of an MSE output unit is (1 - beta)/2 s^2 + ...: with
  // beta >= 1 it has no minimum inside [0, 1], and the fixed-point step, which
  // assumes one, diverges from it.
  if (in.model.cost == CostKind::mse && in.symmetric_nudging && in.beta >= 1.0f &&
      in.nudge_integrator == Integrator::fixed_point)
    throw ConfigError(in.source + ": ep.beta = " + in.quoted("ep.beta") +
                      " must be below 1 with symmetric nudging, model.cost = \"mse\" and fixed-point nudged phases: "
                      "at -beta the nudged energy of an output unit, (1 - beta)/2 s^2 + ..., has no minimum inside "
                      "[0, 1]");
}

// Against implicit differentiation through the free fixed point
// (models/dense_hopfield_reference.h).
std::unique_ptr<GradcheckReference> make_dense_hopfield_gradcheck(const GradcheckSetup& setup) {
  reference::Network network;
  network.layers = setup.model.layers;
  network.cost = setup.model.cost;
  network.activation_max = setup.model.activation_max;
  return reference_gradcheck(
      setup.beta, "implicit differentiation through the free fixed point (double precision)", std::move(network),
      setup.parameters,
      // The kinks of rho = clip(., 0, c): a field at 0 or c.
      [](const reference::Network& n, const std::vector<double>& sample) {
        return hard_sigmoid_kink_margin(reference::fields(n, sample, reference::free_fixed_point(n, sample)),
                                        n.activation_max);
      },
      reference::implicit_gradient);
}

}  // namespace

ModelKind dense_hopfield_kind() {
  ModelKind kind;
  kind.name = "dense_hopfield";
  kind.help = "the layered Hopfield network of DESIGN.md §1";
  kind.check = check_rules;
  kind.clipped_activation = true;
  kind.fused_relaxation = true;
  kind.implicit_gradient = true;
  kind.capturable_step = true;  // no host reads in a step (tests/test_counting_backend.cpp)
  kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
    return std::make_unique<DenseHopfield>(backend, DenseHopfieldShape{model.layers, model.cost, model.activation_max},
                                           max_batch, model.relaxation_path);
  };
  kind.gradcheck = make_dense_hopfield_gradcheck;
  return kind;
}

}  // namespace eqprop
