// model.kind = "predictive_coding": the predictive-coding network trained by EP
// (models/predictive_coding.h).

#include "kernels/error.h"
#include "models/model_registry.h"
#include "models/predictive_coding.h"
#include "models/predictive_coding_reference.h"

namespace eqprop {
namespace {

// predictive_coding.activation
constexpr Choice<PredictionActivation> kActivations[] = {{"sigmoid", PredictionActivation::sigmoid},
                                                         {"hard_sigmoid", PredictionActivation::hard_sigmoid}};

std::any parse_options(const nlohmann::json& resolved, const std::string& source) {
  return choice_value(kActivations, resolved.at("predictive_coding").at("activation"),
                      source + ": predictive_coding.activation");
}

// Also conv_predictive_coding's rules: the message names the configured kind.
void check_rules(const ModelRulesInput& in) {
  const std::string kind = "model.kind = \"" + in.model.kind + "\"";
  if (in.model.cost != CostKind::mse)
    throw ConfigError(in.source + ": " + kind + " nudges its last layer with the mse cost; model.cost = " +
                      in.quoted("model.cost") + " is not supported");
  if (in.nudge_integrator == Integrator::csb)
    throw ConfigError(in.source + ": " + kind +
                      " relaxes its nudged phases by the fixed-point or gradient-flow "
                      "update: dynamics.nudge_integrator = \"csb\" is not supported");
  if (in.resolved.at("dynamics").at("order") != "asynchronous")
    throw ConfigError(in.source + ": " + kind +
                      " needs dynamics.order = \"asynchronous\": synchronous sweeps of "
                      "its nudged phases diverge (Kerjan, Hoier & Scellier 2026)");
  if (in.resolved.at("dynamics").at("noise") != 0.0 || in.resolved.at("dynamics").at("temperature") != 0.0)
    throw ConfigError(in.source + ": " + kind +
                      " runs without Langevin noise (its free phase is a forward pass): "
                      "set dynamics.noise and dynamics.temperature to 0");
  // At -beta the top layer's F is (1 - beta)/2 s^2 + ...: no minimum for beta >= 1.
  if (in.symmetric_nudging && in.beta >= 1.0f)
    throw ConfigError(in.source + ": ep.beta = " + in.quoted("ep.beta") + " must be below 1 with symmetric nudging: " +
                      "at -beta the nudged energy of an output unit, (1 - beta)/2 s^2 + ..., has no minimum");
}

// Against backprop through the forward pass (models/predictive_coding_reference.h).
std::unique_ptr<GradcheckReference> make_predictive_coding_gradcheck(const GradcheckSetup& setup) {
  predictive_coding_reference::Network network;
  network.layers = setup.model.layers;
  network.activation = model_options<PredictionActivation>(setup.model);
  return reference_gradcheck(
      setup.beta, "backprop through the forward pass, the free equilibrium (double precision)", std::move(network),
      setup.parameters,
      // The kinks of the hard sigmoid: a pre-activation at 0 or 1 (the sigmoid has none).
      [](const predictive_coding_reference::Network& n, const std::vector<double>& sample) {
        if (n.activation == PredictionActivation::sigmoid) return 1e300;
        const predictive_coding_reference::States free = predictive_coding_reference::forward_pass(n, sample);
        return hard_sigmoid_kink_margin(predictive_coding_reference::pre_activations(n, sample, free));
      },
      predictive_coding_reference::backprop_gradient);
}

}  // namespace

ModelKind predictive_coding_kind() {
  ModelKind kind;
  kind.name = "predictive_coding";
  kind.help =
      "the predictive-coding network of DESIGN.md (free phase: one forward pass; nudged phases: "
      "asynchronous sweeps)";
  kind.keys = {choice_key("predictive_coding.activation", kActivations,
                          "model.kind = predictive_coding: f of the predictions f(W s + b). `sigmoid`: 1/(1 + e^-a); "
                          "`hard_sigmoid`: clip(a, 0, 1), whose flat sides stop the gradient of the units they "
                          "catch (outputs trained towards 0 die there).")};
  kind.reported_sections = {"predictive_coding"};
  kind.parse_options = parse_options;
  kind.check = check_rules;
  kind.implicit_gradient = true;
  kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
    return std::make_unique<PredictiveCoding>(backend, model.layers, model_options<PredictionActivation>(model), max_batch);
  };
  kind.gradcheck = make_predictive_coding_gradcheck;
  return kind;
}

}  // namespace eqprop
