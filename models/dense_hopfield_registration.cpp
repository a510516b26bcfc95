// model.kind = "dense_hopfield": the layered Hopfield network (models/dense_hopfield.h).
#include <algorithm>
#include <cmath>

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
class DenseHopfieldGradcheck final : public KinkedGradcheck {
 public:
  explicit DenseHopfieldGradcheck(const GradcheckSetup& setup)
      : KinkedGradcheck(setup.beta, "implicit differentiation through the free fixed point (double precision)") {
    network_.layers = setup.model.layers;
    network_.cost = setup.model.cost;
    network_.weights = setup.parameters.weights;
    network_.biases = setup.parameters.biases;
  }

 private:
  // The kinks of the hard sigmoid: a field at 0 or 1.
  double kink_margin(const std::vector<double>& sample) override {
    double margin = 1e300;
    for (const auto& layer : reference::fields(network_, sample, reference::free_fixed_point(network_, sample)))
      for (double field : layer) margin = std::min({margin, std::abs(field), std::abs(field - 1.0)});
    return margin;
  }
  void add_exact_comparison(const reference::Gradient& engine, const std::vector<std::vector<double>>& xs,
                            const std::vector<int>& labels, nlohmann::json& report) override {
    add_gradient_comparison(report, engine, reference::implicit_gradient(network_, xs, labels));
  }

  reference::Network network_;
};

}  // namespace

ModelKind dense_hopfield_kind() {
  ModelKind kind;
  kind.name = "dense_hopfield";
  kind.help = "the layered Hopfield network of DESIGN.md §1";
  kind.minimum_layers = layers_from_input;
  kind.check = check_rules;
  kind.fused_relaxation = true;
  kind.capturable_step = true;  // no host reads in a step (tests/test_counting_backend.cpp)
  kind.weight_tensors = [](const ModelConfig& model) { return model.layers.size() - 1; };
  kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
    return std::make_unique<DenseHopfield>(backend, DenseHopfieldShape{model.layers, model.cost}, max_batch,
                                           model.relaxation_path);
  };
  kind.gradcheck = [](const GradcheckSetup& setup) -> std::unique_ptr<GradcheckReference> {
    return std::make_unique<DenseHopfieldGradcheck>(setup);
  };
  return kind;
}

}  // namespace eqprop
