#include "engine/gradcheck.h"

#include <vector>

#include <algorithm>
#include <cmath>

#include "engine/trainer.h"
#include "kernels/error.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"
#include "models/dense_hopfield_reference.h"
#include "models/oscillator_network_reference.h"

namespace eqprop {

namespace {

// Host copies of an engine gradient in the reference's layout.
reference::Gradient to_reference(const ParameterSet& gradient) {
  reference::Gradient result;
  for (std::size_t l = 0; l < gradient.weights.size(); ++l) {
    const auto gw = gradient.weights[l].to_host();
    const auto gb = gradient.biases[l].to_host();
    result.weights.emplace_back(gw.begin(), gw.end());
    result.biases.emplace_back(gb.begin(), gb.end());
  }
  return result;
}

// The report every model's check shares: the run's settings and, per tensor and
// overall, the cosine and relative error of the engine's EP gradient against the exact one.
nlohmann::json comparison_report(Backend& backend, const Config& config, const GradcheckOptions& options,
                                 const reference::Gradient& engine, const reference::Gradient& exact) {
  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < static_cast<int>(engine.weights.size()); ++l)
    tensors.push_back({{"tensor", l},
                       {"cosine", reference::cosine_similarity(engine, exact, l)},
                       {"relative_error", reference::relative_error(engine, exact, l)}});
  return nlohmann::json{
      {"backend", backend.name()},
      {"model", config.model.kind},
      {"layers", config.model.layers},
      {"cost", config.resolved["model"]["cost"]},
      {"beta", config.ep.beta},
      {"nudging", config.resolved["ep"]["nudging"]},
      {"integrator", config.resolved["dynamics"]["integrator"]},
      {"t_free", config.dynamics.t_free},
      {"t_nudge", config.dynamics.t_nudge},
      {"samples", options.samples},
      {"reference", "implicit differentiation through the free fixed point (double precision)"},
      {"tensors", tensors},
      {"overall",
       {{"cosine", reference::cosine_similarity(engine, exact, -1)},
        {"relative_error", reference::relative_error(engine, exact, -1)}}}};
}

// The dense Hopfield network against models/dense_hopfield_reference.h.
nlohmann::json dense_hopfield_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  const int inputs = config.model.layers.front(), classes = config.model.layers.back();
  Config sized = config;
  sized.training.batch_size = options.samples;
  Trainer trainer(backend, sized, inputs, classes);

  // The reference network, with the engine's initial parameters.
  reference::Network network;
  network.layers = config.model.layers;
  network.cost = config.model.cost;
  for (std::size_t l = 0; l < trainer.model().parameters().weights.size(); ++l) {
    const auto w = trainer.model().parameters().weights[l].to_host();
    const auto b = trainer.model().parameters().biases[l].to_host();
    network.weights.emplace_back(w.begin(), w.end());
    network.biases.emplace_back(b.begin(), b.end());
  }

  // Random inputs in [0, 1) and labels, from the counter-based RNG. The loss of
  // the hard-sigmoid network has kinks where a unit's field crosses 0 or 1; there
  // it has no gradient, and a nudge of size beta crosses the kink when the field
  // is within about beta of it (2 * beta is the margin used). Such samples are drawn again, and counted.
  const double margin_needed = 2.0 * config.ep.beta;
  std::vector<float> x, one_hot;
  std::vector<std::vector<double>> xs;
  std::vector<int> labels;
  int rejected = 0;
  double smallest_margin = 1e300;
  for (std::uint64_t draw = 0; static_cast<int>(xs.size()) < options.samples; ++draw) {
    if (draw >= 100u * static_cast<std::uint64_t>(options.samples))
      throw ConfigError("gradcheck: fewer than 1 in 100 random samples are at least " +
                        std::to_string(margin_needed) +
                        " (2 * ep.beta) from a kink of the hard sigmoid; lower ep.beta");
    std::vector<double> sample;
    for (int i = 0; i < inputs; ++i)
      sample.push_back(uniform_from_word(
          random_words(config.seed, RngStream::synthetic_data, draw * inputs + i, 2).v[0]));
    double margin = 1e300;
    for (const auto& layer : reference::fields(network, sample, reference::free_fixed_point(network, sample)))
      for (double field : layer) margin = std::min({margin, std::abs(field), std::abs(field - 1.0)});
    if (margin < margin_needed) {
      ++rejected;
      continue;
    }
    smallest_margin = std::min(smallest_margin, margin);
    xs.push_back(sample);
    x.insert(x.end(), sample.begin(), sample.end());
    labels.push_back(static_cast<int>(random_words(config.seed, RngStream::synthetic_data, draw, 3).v[0] % classes));
    one_hot.resize(xs.size() * classes, 0.0f);
    one_hot[(xs.size() - 1) * classes + labels.back()] = 1.0f;
  }
  DeviceBuffer<float> x_device(backend, x.size()), target(backend, one_hot.size());
  x_device.copy_from_host(x);
  target.copy_from_host(one_hot);

  ParameterSet gradient = trainer.model().make_parameter_like();
  trainer.ep_gradient(x_device.data(), target.data(), options.samples, 0, gradient);

  const reference::Gradient engine = to_reference(gradient);
  const reference::Gradient exact = reference::implicit_gradient(network, xs, labels);
  nlohmann::json report = comparison_report(backend, config, options, engine, exact);
  report["samples_redrawn_near_a_kink"] = rejected;
  report["smallest_field_margin"] = smallest_margin;
  return report;
}

// The phase-oscillator network against models/oscillator_network_reference.h.
nlohmann::json oscillator_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  const int inputs = config.model.layers.front(), classes = config.model.layers.back();
  Config sized = config;
  sized.training.batch_size = options.samples;
  Trainer trainer(backend, sized, inputs, classes);

  oscillator_reference::Network network;
  network.layers = config.model.layers;
  network.shil = config.oscillator.shil;
  network.input_scale = config.oscillator.input_scale;
  for (std::size_t l = 0; l < trainer.model().parameters().weights.size(); ++l) {
    const auto w = trainer.model().parameters().weights[l].to_host();
    const auto b = trainer.model().parameters().biases[l].to_host();
    network.weights.emplace_back(w.begin(), w.end());
    network.biases.emplace_back(b.begin(), b.end());
  }

  // Random inputs in [0, 1) and labels. EP at a finite beta matches the derivative
  // only where a nudge of +-beta keeps the state in the free fixed point's basin;
  // near a bifurcation (a soft mode of the Hessian) it jumps to another minimum and
  // the EP estimate is off by orders of magnitude (seen: a sample whose smallest
  // Hessian eigenvalue was 2.3 beta). Samples whose reference nudged fixed points
  // deviate from the linear response by more than half of it are drawn again, and
  // counted (smooth samples deviate by ~beta of it).
  constexpr double kMaxNonlinearity = 0.5;
  std::vector<float> x, one_hot;
  std::vector<std::vector<double>> xs;
  std::vector<int> labels;
  int rejected = 0;
  double largest_nonlinearity = 0.0;
  for (std::uint64_t draw = 0; static_cast<int>(xs.size()) < options.samples; ++draw) {
    if (draw >= 100u * static_cast<std::uint64_t>(options.samples))
      throw ConfigError("gradcheck: fewer than 1 in 100 random samples stay in their basin under a nudge of ep.beta = " +
                        std::to_string(config.ep.beta) + "; lower ep.beta");
    std::vector<double> sample;
    for (int i = 0; i < inputs; ++i)
      sample.push_back(uniform_from_word(
          random_words(config.seed, RngStream::synthetic_data, draw * inputs + i, 2).v[0]));
    const int label = static_cast<int>(random_words(config.seed, RngStream::synthetic_data, draw, 3).v[0] % classes);
    const double nonlinearity = oscillator_reference::nudge_nonlinearity(network, sample, label, config.ep.beta,
                                                                           config.dynamics.dt);
    if (!(nonlinearity < kMaxNonlinearity)) {
      ++rejected;
      continue;
    }
    largest_nonlinearity = std::max(largest_nonlinearity, nonlinearity);
    xs.push_back(sample);
    x.insert(x.end(), sample.begin(), sample.end());
    labels.push_back(label);
    one_hot.resize(xs.size() * classes, 0.0f);
    one_hot[(xs.size() - 1) * classes + labels.back()] = 1.0f;
  }
  DeviceBuffer<float> x_device(backend, x.size()), target(backend, one_hot.size());
  x_device.copy_from_host(x);
  target.copy_from_host(one_hot);

  ParameterSet gradient = trainer.model().make_parameter_like();
  trainer.ep_gradient(x_device.data(), target.data(), options.samples, 0, gradient);
  const reference::Gradient engine = to_reference(gradient);
  const reference::Gradient exact = oscillator_reference::implicit_gradient(network, xs, labels, config.dynamics.dt);
  nlohmann::json report = comparison_report(backend, config, options, engine, exact);
  report["shil"] = config.oscillator.shil;
  report["input_scale"] = config.oscillator.input_scale;
  report["samples_redrawn_near_a_bifurcation"] = rejected;
  report["largest_nudge_nonlinearity"] = largest_nonlinearity;
  report["reference"] = "implicit differentiation through the free fixed point (Hessian of V, double precision)";
  return report;
}

}  // namespace

nlohmann::json run_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  if (config.model.kind == "dense_hopfield") return dense_hopfield_gradcheck(backend, config, options);
  if (config.model.kind == "oscillator") return oscillator_gradcheck(backend, config, options);
  throw ConfigError("gradcheck has no reference gradient for model.kind = \"" + config.model.kind + "\"");
}

}  // namespace eqprop
