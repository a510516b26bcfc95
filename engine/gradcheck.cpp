#include "engine/gradcheck.h"

#include <vector>

#include "engine/trainer.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"
#include "models/dense_hopfield_reference.h"

namespace eqprop {

nlohmann::json run_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  const int inputs = config.model.layers.front(), classes = config.model.layers.back();
  Config sized = config;
  sized.training.batch_size = options.samples;
  Trainer trainer(backend, sized, inputs, classes);

  // Random inputs in [0, 1) and labels, from the counter-based RNG.
  std::vector<float> x(std::size_t(options.samples) * inputs), one_hot(std::size_t(options.samples) * classes, 0.0f);
  std::vector<std::vector<double>> xs(options.samples);
  std::vector<int> labels(options.samples);
  for (int s = 0; s < options.samples; ++s) {
    for (int i = 0; i < inputs; ++i) {
      x[std::size_t(s) * inputs + i] =
          uniform_from_word(random_words(config.seed, RngStream::synthetic_data, std::uint64_t(s) * inputs + i, 2).v[0]);
      xs[s].push_back(x[std::size_t(s) * inputs + i]);
    }
    labels[s] = static_cast<int>(random_words(config.seed, RngStream::synthetic_data, s, 3).v[0] % classes);
    one_hot[std::size_t(s) * classes + labels[s]] = 1.0f;
  }
  DeviceBuffer<float> x_device(backend, x.size()), target(backend, one_hot.size());
  x_device.copy_from_host(x);
  target.copy_from_host(one_hot);

  ParameterSet gradient = trainer.model().make_parameter_like();
  trainer.ep_gradient(x_device.data(), target.data(), options.samples, 0, gradient);

  reference::Network network;
  network.layers = config.model.layers;
  network.cost = config.model.cost;
  reference::Gradient engine;
  for (std::size_t l = 0; l < gradient.weights.size(); ++l) {
    const auto w = trainer.model().parameters().weights[l].to_host();
    const auto b = trainer.model().parameters().biases[l].to_host();
    network.weights.emplace_back(w.begin(), w.end());
    network.biases.emplace_back(b.begin(), b.end());
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
      {"reference", "implicit differentiation through the free fixed point (double precision)"},
      {"tensors", tensors},
      {"overall",
       {{"cosine", reference::cosine_similarity(engine, exact, -1)},
        {"relative_error", reference::relative_error(engine, exact, -1)}}}};
}

}  // namespace eqprop
