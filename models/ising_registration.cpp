// model.kind = "ising": the layered network of binary spins (models/ising_network.h),
// with its `ising` config section.
#include "kernels/error.h"
#include "models/ising_network.h"
#include "models/model_registry.h"

namespace eqprop {
namespace {

constexpr Choice<SpinUpdate> kSpinUpdates[] = {{"gibbs", SpinUpdate::gibbs}, {"metropolis", SpinUpdate::metropolis}};
constexpr Choice<IsingRelaxation> kRelaxations[] = {{"annealing", IsingRelaxation::annealing},
                                                    {"dsb", IsingRelaxation::dsb}};

// The `ising` section: the network's output replication and its dynamics (the sweep
// counts are dynamics.t_free and dynamics.t_nudge).
struct IsingOptions {
  int spins_per_class = 1;
  int replicas = 1;
  IsingDynamics dynamics;
};

std::any parse_options(const nlohmann::json& resolved, const std::string& source) {
  const nlohmann::json& section = resolved.at("ising");
  IsingOptions options;
  options.dynamics.temperature_start = section.at("temperature_start").get<float>();
  options.dynamics.temperature_end = section.at("temperature_end").get<float>();
  options.dynamics.rule = choice_value(kSpinUpdates, section.at("update"), source + ": ising.update");
  options.dynamics.relaxation = choice_value(kRelaxations, section.at("relaxation"), source + ": ising.relaxation");
  options.spins_per_class = section.at("spins_per_class").get<int>();
  options.replicas = section.at("replicas").get<int>();
  return options;
}

void check_rules(const ModelRulesInput& in) {
  if (in.model.cost != CostKind::mse)
    throw ConfigError(in.source + ": model.kind = \"ising\" has its own output cost (the field on the output "
                      "spins); model.cost must be \"mse\", got " + in.quoted("model.cost"));
}

}  // namespace

ModelKind ising_kind() {
  ModelKind kind;
  kind.name = "ising";
  kind.help = "a layered network of binary spins annealed by block Gibbs/Metropolis sweeps (the `ising` section; "
              "Laydevant et al. 2024)";
  kind.keys = {
      {"ising.temperature_start", ConfigValueType::number, 2.0, 0, 1e6, true, {},
       "model.kind = ising: temperature of the first free-phase sweep; the free phase anneals geometrically to "
       "`ising.temperature_end` over dynamics.t_free sweeps."},
      {"ising.temperature_end", ConfigValueType::number, 0.1, 0, 1e6, true, {},
       "model.kind = ising: temperature of the last free-phase sweep and of every sweep of the nudged phases "
       "(dynamics.t_nudge sweeps each, from the free state)."},
      choice_key("ising.update", kSpinUpdates,
                 "model.kind = ising: the spin update of a sweep. `gibbs`: heat bath, s = +1 with probability "
                 "1/(1+exp(-2f/T)). `metropolis`: flip with probability min(1, exp(-2sf/T))."),
      choice_key("ising.relaxation", kRelaxations,
                 "model.kind = ising: how a phase relaxes. `annealing`: block sweeps (odd layers, then even layers) "
                 "over the temperature schedule. `dsb`: discrete simulated bifurcation (Goto et al. 2021), step "
                 "dynamics.dt, gain dynamics.a0, c0 = 1, the pump ramping over the free phase; nudged phases start "
                 "at rest from the free spins (the temperatures and ising.update do not apply)."),
      {"ising.spins_per_class", ConfigValueType::integer, 1, 1, 1024, false, {},
       "model.kind = ising: output spins per class (the top layer has classes * this many); the prediction is "
       "the class with the largest mean spin."},
      {"ising.replicas", ConfigValueType::integer, 1, 1, 4096, false, {},
       "model.kind = ising: independent annealing chains per sample; the update and the read-out average over "
       "them."},
  };
  kind.reported_sections = {"ising"};
  kind.relaxation = [](const nlohmann::json& resolved) -> std::string {
    const nlohmann::json& section = resolved.at("ising");
    const std::string relaxation = section.at("relaxation").get<std::string>();
    if (relaxation == "dsb") return "dsb";  // the temperatures and ising.update do not apply
    return relaxation + " (" + section.at("update").get<std::string>() + ")";
  };
  kind.parse_options = parse_options;
  kind.check = check_rules;
  kind.weight_tensors = weight_tensors_known_when_built;
  kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
    const auto& options = model_options<IsingOptions>(model);
    return std::make_unique<IsingNetwork>(
        backend, IsingNetworkShape{model.layers, options.spins_per_class, options.replicas}, options.dynamics,
        max_batch, model.relaxation_path);
  };
  kind.fused_relaxation = true;  // annealing sweeps (kernels/fused_ising_block.h)
  // No host reads in a step; its sweeps' and dSB starts' keys read the step's first
  // sample from the step-parameter block when recorded (PhaseSpec::step_first_sample).
  kind.capturable_step = true;
  kind.no_gradcheck =
      "the loss of binary spins at the annealed (near zero temperature) state is flat almost everywhere; the EP "
      "estimate is checked against the exact finite-temperature gradient in tests/test_ising_network.cpp";
  return kind;
}

}  // namespace eqprop
