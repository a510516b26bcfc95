// model.kind = "oscillator": the layered network of coupled phase oscillators
// (models/oscillator_network.h), with its `oscillator` config section.
#include <algorithm>

#include "kernels/error.h"
#include "models/model_registry.h"
#include "models/oscillator_network.h"
#include "models/oscillator_network_reference.h"

namespace eqprop {
namespace {

// The `oscillator` section.
struct OscillatorOptions {
  float shil = 0.0f;         // S, second-harmonic injection
  float input_scale = kPi;   // input phases = input_scale * x
};

std::any parse_options(const nlohmann::json& resolved, const std::string&) {
  const nlohmann::json& section = resolved.at("oscillator");
  return OscillatorOptions{section.at("shil").get<float>(), section.at("input_scale").get<float>()};
}

void check_rules(const ModelRulesInput& in) {
  if (in.model.cost != CostKind::mse)
    throw ConfigError(in.source + ": model.kind = \"oscillator\" reads its output as (1 + cos phi)/2 with the mse "
                      "cost; model.cost = " + in.quoted("model.cost") + " is not supported");
  if (in.integrator != Integrator::gradient_flow || in.nudge_integrator != Integrator::gradient_flow)
    throw ConfigError(in.source + ": model.kind = \"oscillator\" relaxes by gradient flow on the phases: set "
                      "dynamics.integrator (and dynamics.nudge_integrator) to \"gradient_flow\"");
}

// Against implicit differentiation through the free fixed point
// (models/oscillator_network_reference.h).
class OscillatorGradcheck final : public GradcheckReference {
 public:
  explicit OscillatorGradcheck(const GradcheckSetup& setup)
      : options_(model_options<OscillatorOptions>(setup.model)), beta_(setup.beta), dt_(setup.dt) {
    network_.layers = setup.model.layers;
    network_.shil = options_.shil;
    network_.input_scale = options_.input_scale;
    assign_parameters(network_, setup.parameters);
  }
  // Near a bifurcation (a soft mode of the Hessian) a nudge of +-beta moves the
  // state to another minimum and the EP estimate is off by orders of magnitude
  // (seen: a sample whose smallest Hessian eigenvalue was 2.3 beta). Samples whose
  // reference nudged fixed points deviate from the linear response by more than
  // half of it are redrawn (smooth samples deviate by ~beta of it).
  bool usable(const std::vector<double>& sample, int label) override {
    constexpr double kMaxNonlinearity = 0.5;
    const double nonlinearity = oscillator_reference::nudge_nonlinearity(network_, sample, label, beta_, dt_);
    if (!(nonlinearity < kMaxNonlinearity)) return false;
    largest_nonlinearity_ = std::max(largest_nonlinearity_, nonlinearity);
    return true;
  }
  std::string remedy() const override {
    return "fewer stay in their basin under a nudge of ep.beta = " + std::to_string(beta_) + "; lower ep.beta";
  }
  void compare(const reference::Gradient& engine, const std::vector<std::vector<double>>& xs,
               const std::vector<int>& labels, int redrawn, nlohmann::json& report) override {
    add_gradient_comparison(report, engine, oscillator_reference::implicit_gradient(network_, xs, labels, dt_));
    report["shil"] = options_.shil;
    report["input_scale"] = options_.input_scale;
    report["samples_redrawn_near_a_bifurcation"] = redrawn;
    report["largest_nudge_nonlinearity"] = largest_nonlinearity_;
    report["reference"] = "implicit differentiation through the free fixed point (Hessian of V, double precision)";
  }

 private:
  OscillatorOptions options_;
  oscillator_reference::Network network_;
  float beta_, dt_;
  double largest_nonlinearity_ = 0.0;
};

}  // namespace

ModelKind oscillator_kind() {
  ModelKind kind;
  kind.name = "oscillator";
  kind.help = "a layered network of coupled phase oscillators (section `oscillator`; needs gradient_flow dynamics "
              "and the mse cost)";
  kind.keys = {
      {"oscillator.shil", ConfigValueType::number, 0.0, 0, 100, false, {},
       "model.kind = oscillator: S, the second-harmonic injection -(S/2) cos 2phi on every oscillator, "
       "which pulls phases towards 0 or pi (0: free phases)."},
      {"oscillator.input_scale", ConfigValueType::number, 3.14159265358979, 0, 100, true, {},
       "model.kind = oscillator: the input x is clamped as the phases input_scale * x (pi: pixels in "
       "[0, 1] span phases 0 to pi)."},
  };
  kind.parse_options = parse_options;
  kind.check = check_rules;
  kind.fused_relaxation = true;
  // No host reads in a step (tests/test_counting_backend.cpp); its Langevin noise
  // keys on the step-parameter block when recorded (LayeredModel::set_langevin_noise).
  kind.capturable_step = true;
  kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
    const auto& options = model_options<OscillatorOptions>(model);
    return std::make_unique<OscillatorNetwork>(
        backend, OscillatorShape{model.layers, options.shil, options.input_scale}, max_batch, model.relaxation_path);
  };
  kind.gradcheck = make_gradcheck<OscillatorGradcheck>;
  kind.implicit_gradient = true;
  return kind;
}

}  // namespace eqprop
