// The model kinds a build knows (model.kind). Each kind declares, next to its code
// (models/*_registration.cpp): its name, its config section's keys, how those keys
// parse into its own typed options, its rules on the rest of the config, its
// factory and its gradient-check reference. engine/ sees only this registry: the
// config schema merges the keys, the model factory, the gradient check and the
// benchmark look the kind up by name.
//
// A new model is its files plus one line in models/model_registry.cpp's list of
// built-in kinds (or, for a model outside the library such as a test's, one
// register_model_kind call before its config is parsed).
#pragma once

#include <any>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/backend.h"
#include "kernels/layer_step.h"
#include "kernels/row_metrics.h"
#include "models/config_key.h"
#include "models/energy_model.h"
#include "models/model_config.h"
#include "models/gradcheck_reference.h"

namespace eqprop {

// What a kind's rules see of a schema-checked run config: the model, the phases
// that relax it, and the resolved config to quote the user's values in messages.
struct ModelRulesInput {
  const ModelConfig& model;
  Integrator integrator;
  Integrator nudge_integrator;
  float beta;
  bool symmetric_nudging;
  const nlohmann::json& resolved;
  const std::string& source;  // names the file in ConfigError messages

  // The resolved value of a dotted key as JSON text, e.g. "\"mse\"".
  std::string quoted(const std::string& dotted_key) const;
};

// The inputs of a kind's gradient-check reference (engine/gradcheck.h).
struct GradcheckSetup {
  const ModelConfig& model;
  float beta;
  float dt;
  const nlohmann::json& resolved;
  const reference::Gradient& parameters;  // the engine's initial parameters
};

// model.layers of a kind whose layers start with the input: input and output, and
// a hidden layer for the softmax read-out of the cross-entropy cost.
std::size_t layers_from_input(CostKind cost);

// ModelKind::weight_tensors of a kind with one coupling tensor between each pair of
// adjacent model.layers.
std::size_t weight_tensors_between_layers(const ModelConfig& model);
// ModelKind::weight_tensors of a kind whose tensor count only the built model knows.
std::size_t weight_tensors_known_when_built(const ModelConfig& model);

struct ModelKind {
  std::string name;
  // model.kind's reference: what the kind is, after "`name`, ".
  std::string help;
  // The keys of its own config section(s) ("ising.replicas", ...).
  std::vector<ConfigKey> keys;
  // Sections copied verbatim into the gradcheck and benchmark reports and the run
  // header (the layer shapes model.layers alone does not give).
  std::vector<std::string> reported_sections;
  // Other kinds' sections whose keys it reads too (conv_predictive_coding reads
  // conv_hopfield's `conv`): their keys are not refused as another kind's.
  std::vector<std::string> borrowed_sections;
  // The relaxation its phases run, in words, for a kind that does not use
  // dynamics.integrator (records name what ran). Null: dynamics.integrator.
  std::function<std::string(const nlohmann::json& resolved)> relaxation;
  // The least number of model.layers entries with a cost. Default: layers that
  // start with the input.
  std::function<std::size_t(CostKind)> minimum_layers = layers_from_input;
  // Parses its section(s) of the resolved config into its typed options;
  // ConfigError naming `source` and the key. Null: no options.
  std::function<std::any(const nlohmann::json& resolved, const std::string& source)> parse_options;
  // Rules across sections (dynamics, cost, ep); ConfigError naming the keys. Null: none.
  std::function<void(const ModelRulesInput&)> check;
  // Weight tensors optimizer.lr lists when it is a list; 0 where only the built
  // model knows (the trainer checks it then). Default: one tensor between each
  // pair of adjacent model.layers.
  std::function<std::size_t(const ModelConfig&)> weight_tensors = weight_tensors_between_layers;
  // Its energy's activation is rho = clip(s, 0, c) with c from the config
  // (model.activation = clipped_relu is refused otherwise).
  bool clipped_activation = false;
  // It has a fused relaxation path (training.relaxation_path = fused is refused otherwise).
  bool fused_relaxation = false;
  // Its model implements EnergyModel::implicit_gradient (training.algorithm =
  // implicit is refused otherwise).
  bool implicit_gradient = false;
  // Its training step makes the same backend calls with the same arguments every
  // step, with no host read inside, apart from what the trainer refuses for every
  // kind (early exit, Langevin noise, the hardware model, a random sign of beta):
  // training.cuda_graphs may record it once and replay it (engine/captured_step.h).
  bool capturable_step = false;
  // Builds the model sized for max_batch systems, its parameters not yet initialized.
  std::function<std::unique_ptr<EnergyModel>(Backend&, const ModelConfig&, int max_batch)> make;
  // Its gradient-check reference; null when it has none, with why in no_gradcheck.
  std::function<std::unique_ptr<GradcheckReference>(const GradcheckSetup&)> gradcheck;
  std::string no_gradcheck;
};

// The typed options the kind's parse_options returned for `model`.
template <class Options>
const Options& model_options(const ModelConfig& model) {
  return std::any_cast<const Options&>(model.options);
}

// ModelKind::gradcheck of a kind whose reference is built from the setup alone:
// kind.gradcheck = make_gradcheck<MyModelGradcheck>.
template <class Reference>
std::unique_ptr<GradcheckReference> make_gradcheck(const GradcheckSetup& setup) {
  return std::make_unique<Reference>(setup);
}

// Every registered kind, built-in ones first, in registration order (the first is
// model.kind's default).
const std::vector<ModelKind>& model_kinds();

// The kind of that name; ConfigError listing the known ones if there is none.
const ModelKind& model_kind(const std::string& name);

// Adds a kind (ConfigError if its name or one of its keys is another kind's; a key
// of a run-wide section makes the config schema refuse to build). Configs parsed
// afterwards accept it. Register before configs are parsed on other threads.
void register_model_kind(ModelKind kind);

// Removes a kind added by register_model_kind (tests register theirs for their
// own duration); no-op for an unknown name.
void unregister_model_kind(const std::string& name);

// Changes with every registration, so that tables derived from the registry (the
// config schema) know when to rebuild.
std::size_t model_registry_generation();

}  // namespace eqprop
