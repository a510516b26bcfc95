#include "engine/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/trainer.h"
#include "kernels/error.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"
#include "models/model_registry.h"

namespace eqprop {

namespace {

// A batch of random inputs in [0, 1) and labels from the counter-based RNG, each
// kept only if usable(sample, label): EP at a finite beta matches the derivative
// only where the loss is smooth over the nudge (each model kind's
// GradcheckReference says what that means for it). Unusable samples are drawn
// again, and counted; remedy() (asked after the draws, so it can use what they
// measured) says what to change when too few are usable.
struct Samples {
  std::vector<std::vector<double>> xs;
  std::vector<int> labels;
  std::vector<float> x, one_hot;
  int rejected = 0;
};

Samples draw_samples(const Config& config, const GradcheckOptions& options, int inputs, int classes,
                     const std::function<bool(const std::vector<double>&, int)>& usable,
                     const std::function<std::string()>& remedy) {
  Samples out;
  for (std::uint64_t draw = 0; static_cast<int>(out.xs.size()) < options.samples; ++draw) {
    if (draw >= 100u * static_cast<std::uint64_t>(options.samples))
      throw ConfigError("gradcheck: fewer than 1 in 100 random samples are usable: " + remedy());
    std::vector<double> sample;
    int label = 0;
    if (options.candidate_labels.empty()) {
      for (int i = 0; i < inputs; ++i)
        sample.push_back(uniform_from_word(random_words(config.seed, RngStream::synthetic_data, draw * inputs + i, 2).v[0]));
      label = static_cast<int>(random_words(config.seed, RngStream::synthetic_data, draw, 3).v[0] % classes);
    } else {
      if (draw >= options.candidate_labels.size())
        throw ConfigError("gradcheck: fewer than " + std::to_string(options.samples) + " of the " +
                          std::to_string(options.candidate_labels.size()) + " given samples are usable: " + remedy());
      const auto first = options.candidates.begin() + static_cast<std::ptrdiff_t>(draw * inputs);
      sample.assign(first, first + inputs);
      label = options.candidate_labels[draw];
    }
    if (!usable(sample, label)) {
      ++out.rejected;
      continue;
    }
    out.xs.push_back(sample);
    out.x.insert(out.x.end(), sample.begin(), sample.end());
    out.labels.push_back(label);
    out.one_hot.resize(out.xs.size() * classes, 0.0f);
    out.one_hot[(out.xs.size() - 1) * classes + label] = 1.0f;
  }
  return out;
}

// The engine's EP gradient of the samples, on the host.
reference::Gradient engine_gradient(Backend& backend, Trainer& trainer, const Samples& samples) {
  DeviceBuffer<float> x_device(backend, samples.x.size()), target(backend, samples.one_hot.size());
  x_device.copy_from_host(samples.x);
  target.copy_from_host(samples.one_hot);
  ParameterSet gradient = trainer.model().make_parameter_like();
  trainer.ep_gradient(x_device.data(), target.data(), static_cast<int>(samples.xs.size()), 0, gradient);
  return host_tensors(gradient);
}

// The fields of the report every model shares.
nlohmann::json report(Backend& backend, const Config& config, const GradcheckOptions& options) {
  return nlohmann::json{{"backend", backend.name()},
                        {"model", config.model.kind},
                        {"layers", config.model.layers},
                        {"cost", config.resolved["model"]["cost"]},
                        {"beta", config.ep.beta},
                        {"nudging", config.resolved["ep"]["nudging"]},
                        {"integrator", config.resolved["dynamics"]["integrator"]},
                        {"t_free", config.dynamics.t_free},
                        {"t_nudge", config.dynamics.t_nudge},
                        {"samples", options.samples}};
}

}  // namespace

nlohmann::json run_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  const ModelKind& kind = model_kind(config.model.kind);
  if (!kind.gradcheck)
    throw ConfigError("gradcheck has no reference gradient for model.kind = \"" + kind.name + "\"" +
                      (kind.no_gradcheck.empty() ? "" : ": " + kind.no_gradcheck));
  Config sized = config;
  sized.training.batch_size = options.samples;
  Trainer trainer(backend, sized);
  if (!options.checkpoint.empty()) load_checkpoint(options.checkpoint, trainer, /*with_optimizer=*/false);
  const EnergyModel& model = trainer.model();
  if (options.candidates.size() != options.candidate_labels.size() * static_cast<std::size_t>(model.input_size()))
    throw ConfigError("gradcheck: the given samples do not have the model's input size " +
                      std::to_string(model.input_size()));

  // The reference, with the engine's parameters.
  const reference::Gradient parameters = host_tensors(model.parameters());
  const std::unique_ptr<GradcheckReference> exact =
      kind.gradcheck(GradcheckSetup{config.model, config.ep.beta, config.dynamics.dt, config.resolved, parameters});
  const Samples samples = draw_samples(
      config, options, model.input_size(), model.classes(),
      [&](const std::vector<double>& sample, int label) { return exact->usable(sample, label); },
      [&] { return exact->remedy(); });
  const reference::Gradient engine = engine_gradient(backend, trainer, samples);
  nlohmann::json result = report(backend, config, options);
  exact->compare(engine, samples.xs, samples.labels, samples.rejected, result);
  for (const std::string& section : kind.reported_sections) result[section] = config.resolved[section];
  return result;
}

}  // namespace eqprop
