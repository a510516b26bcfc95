#include "engine/gradcheck.h"

#include <vector>

#include <algorithm>
#include <cmath>

#include "engine/trainer.h"
#include "kernels/error.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"
#include "models/dense_hopfield_reference.h"

namespace eqprop {

namespace {

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

  reference::Gradient engine;
  for (std::size_t l = 0; l < gradient.weights.size(); ++l) {
    const auto gw = gradient.weights[l].to_host();
    const auto gb = gradient.biases[l].to_host();
    engine.weights.emplace_back(gw.begin(), gw.end());
    engine.biases.emplace_back(gb.begin(), gb.end());
  }
  const reference::Gradient exact = reference::implicit_gradient(network, xs, labels);

  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < static_cast<int>(gradient.weights.size()); ++l)
    tensors.push_back({{"tensor", l},
                       {"cosine", reference::cosine_similarity(engine, exact, l)},
                       {"relative_error", reference::relative_error(engine, exact, l)}});
  return nlohmann::json{
      {"backend", backend.name()},
      {"layers", config.model.layers},
      {"cost", config.resolved["model"]["cost"]},
      {"beta", config.ep.beta},
      {"nudging", config.resolved["ep"]["nudging"]},
      {"integrator", config.resolved["dynamics"]["integrator"]},
      {"t_free", config.dynamics.t_free},
      {"t_nudge", config.dynamics.t_nudge},
      {"samples", options.samples},
      {"samples_redrawn_near_a_kink", rejected},
      {"smallest_field_margin", smallest_margin},
      {"reference", "implicit differentiation through the free fixed point (double precision)"},
      {"tensors", tensors},
      {"overall",
       {{"cosine", reference::cosine_similarity(engine, exact, -1)},
        {"relative_error", reference::relative_error(engine, exact, -1)}}}};
}

}  // namespace

nlohmann::json run_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  if (config.model.kind == "dense_hopfield") return dense_hopfield_gradcheck(backend, config, options);
  throw ConfigError("gradcheck has no reference gradient for model.kind = \"" + config.model.kind + "\"");
}

}  // namespace eqprop
