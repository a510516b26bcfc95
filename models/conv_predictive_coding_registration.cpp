// model.kind = "conv_predictive_coding": conv layers with 2x2 pooling, then dense
// layers, as a predictive-coding network (models/conv_predictive_coding.h). It reads
// conv_hopfield's `conv` section for the conv stack and predictive_coding's
// `predictive_coding.activation`, and follows predictive_coding's rules.
#include <stdexcept>

#include "kernels/error.h"
#include "models/conv_predictive_coding.h"
#include "models/conv_predictive_coding_reference.h"
#include "models/model_registry.h"

namespace eqprop {

// The conv stack of the `conv` section, parsed by its owner (models/conv_hopfield_registration.cpp).
ConvHopfieldShape conv_section_shape(const nlohmann::json& resolved, const std::string& source);

namespace {

struct ConvPredictiveCodingOptions {
  ConvHopfieldShape conv;  // input, conv layers, pooling
  PredictionActivation activation = PredictionActivation::sigmoid;
};

std::any parse_options(const nlohmann::json& resolved, const std::string& source) {
  ConvPredictiveCodingOptions options;
  options.conv = conv_section_shape(resolved, source);
  options.activation =
      std::any_cast<PredictionActivation>(model_kind("predictive_coding").parse_options(resolved, source));
  return options;
}

// The network a model config describes, not yet validated.
ConvHopfieldShape network_shape(const ModelConfig& model) {
  ConvHopfieldShape shape = model_options<ConvPredictiveCodingOptions>(model).conv;
  shape.dense = model.layers;
  shape.cost = model.cost;
  return shape;
}

void check_rules(const ModelRulesInput& in) {
  // The dense network's rules: mse cost, no cSB, asynchronous sweeps, no noise, beta < 1 at -beta.
  model_kind("predictive_coding").check(in);
  if (!network_shape(in.model).skips.empty())
    throw ConfigError(in.source + ": conv.skips: the predictive-coding network is a chain; skip couplings are "
                                  "terms of the conv_hopfield energy");
  try {
    network_shape(in.model).validate();
  } catch (const std::invalid_argument& error) {
    throw ConfigError(in.source + ": " + error.what());
  }
}

// Against backprop through the forward pass (models/conv_predictive_coding_reference.h),
// redrawing samples near a max-pooling tie or a kink of the hard sigmoid.
std::unique_ptr<GradcheckReference> make_conv_predictive_coding_gradcheck(const GradcheckSetup& setup) {
  namespace reference = conv_predictive_coding_reference;
  reference::Network network;
  static_cast<conv_reference::Network&>(network) = conv_reference::network_of(network_shape(setup.model));
  network.activation = model_options<ConvPredictiveCodingOptions>(setup.model).activation;
  return reference_gradcheck(
      setup.beta, "backprop through the forward pass, the free equilibrium (double precision)", std::move(network),
      setup.parameters,
      [](const reference::Network& n, const std::vector<double>& sample) { return reference::kink_margin(n, sample); },
      reference::backprop_gradient);
}

}  // namespace

ModelKind conv_predictive_coding_kind() {
  ModelKind kind;
  kind.name = "conv_predictive_coding";
  kind.help =
      "the convolutional predictive-coding network of DESIGN.md (the `conv` section's conv stack, then "
      "model.layers' dense layers; f from predictive_coding.activation; Kerjan, Hoier & Scellier 2026)";
  kind.borrowed_sections = {"conv", "predictive_coding"};
  kind.reported_sections = {"conv", "predictive_coding"};
  // model.layers are the dense layers after the conv stack: at least the output.
  kind.minimum_layers = [](CostKind) { return std::size_t(1); };
  kind.parse_options = parse_options;
  kind.check = check_rules;
  kind.implicit_gradient = true;
  kind.weight_tensors = weight_tensors_known_when_built;
  kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
    return std::make_unique<ConvPredictiveCoding>(backend, network_shape(model),
                                                  model_options<ConvPredictiveCodingOptions>(model).activation,
                                                  max_batch);
  };
  kind.gradcheck = make_conv_predictive_coding_gradcheck;
  return kind;
}

}  // namespace eqprop
