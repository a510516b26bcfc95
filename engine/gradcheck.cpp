#include "engine/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "engine/trainer.h"
#include "kernels/error.h"
#include "kernels/device_buffer.h"
#include "kernels/philox.h"
#include "engine/model_factory.h"
#include "models/conv_hopfield_reference.h"
#include "models/dense_hopfield_reference.h"
#include "models/oscillator_network_reference.h"

namespace eqprop {

namespace {

// A batch of random inputs in [0, 1) and labels from the counter-based RNG, each
// kept only if usable(sample, label): EP at a finite beta matches the derivative
// only where the loss is smooth over the nudge (the models' checks below say what
// that means for each). Unusable samples are drawn again, and counted.
struct Samples {
  std::vector<std::vector<double>> xs;
  std::vector<int> labels;
  std::vector<float> x, one_hot;
  int rejected = 0;
};

Samples draw_samples(const Config& config, const GradcheckOptions& options, int inputs, int classes,
                     const std::function<bool(const std::vector<double>&, int)>& usable, const std::string& remedy) {
  Samples out;
  for (std::uint64_t draw = 0; static_cast<int>(out.xs.size()) < options.samples; ++draw) {
    if (draw >= 100u * static_cast<std::uint64_t>(options.samples))
      throw ConfigError("gradcheck: fewer than 1 in 100 random samples are usable: " + remedy);
    std::vector<double> sample;
    for (int i = 0; i < inputs; ++i)
      sample.push_back(uniform_from_word(random_words(config.seed, RngStream::synthetic_data, draw * inputs + i, 2).v[0]));
    const int label = static_cast<int>(random_words(config.seed, RngStream::synthetic_data, draw, 3).v[0] % classes);
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

// Samples of a model whose loss has kinks (a unit's field crossing 0 or 1, a
// max-pooling window changing its maximum): there it has no gradient, and a nudge
// of size beta crosses the kink when the sample is within about beta of it, so
// samples nearer than 2 * beta are redrawn. margin_of(x): the distance to the
// nearest kink at the free fixed point.
Samples draw_away_from_kinks(const Config& config, const GradcheckOptions& options, int inputs, int classes,
                             const std::function<double(const std::vector<double>&)>& margin_of,
                             double& smallest_margin) {
  const double needed = 2.0 * config.ep.beta;
  smallest_margin = 1e300;
  return draw_samples(
      config, options, inputs, classes,
      [&](const std::vector<double>& sample, int) {
        const double margin = margin_of(sample);
        if (margin < needed) return false;
        smallest_margin = std::min(smallest_margin, margin);
        return true;
      },
      "fewer are at least " + std::to_string(needed) + " (2 * ep.beta) from a kink of the loss; lower ep.beta");
}

// Double-precision host copies of a parameter-shaped set (parameters or a
// gradient), tensor by tensor, in the layout every reference uses.
reference::Gradient host_tensors(const ParameterSet& set) {
  reference::Gradient host;
  for (std::size_t l = 0; l < set.weights.size(); ++l) {
    const auto w = set.weights[l].to_host();
    const auto b = set.biases[l].to_host();
    host.weights.emplace_back(w.begin(), w.end());
    host.biases.emplace_back(b.begin(), b.end());
  }
  return host;
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

// Per tensor and overall, the cosine and relative error of the engine's EP
// gradient against the exact one.
void add_comparison(nlohmann::json& result, const reference::Gradient& engine, const reference::Gradient& exact) {
  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < static_cast<int>(engine.weights.size()); ++l)
    tensors.push_back({{"tensor", l},
                       {"cosine", reference::cosine_similarity(engine, exact, l)},
                       {"relative_error", reference::relative_error(engine, exact, l)}});
  result["tensors"] = tensors;
  result["overall"] = {{"cosine", reference::cosine_similarity(engine, exact, -1)},
                       {"relative_error", reference::relative_error(engine, exact, -1)}};
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
  const reference::Gradient parameters = host_tensors(trainer.model().parameters());
  network.weights = parameters.weights;
  network.biases = parameters.biases;
  double smallest_margin = 0;
  const Samples samples = draw_away_from_kinks(
      config, options, inputs, classes,
      [&](const std::vector<double>& sample) {
        double margin = 1e300;
        for (const auto& layer : reference::fields(network, sample, reference::free_fixed_point(network, sample)))
          for (double field : layer) margin = std::min({margin, std::abs(field), std::abs(field - 1.0)});
        return margin;
      },
      smallest_margin);
  const reference::Gradient engine = engine_gradient(backend, trainer, samples);
  const reference::Gradient exact = reference::implicit_gradient(network, samples.xs, samples.labels);
  nlohmann::json result = report(backend, config, options);
  add_comparison(result, engine, exact);
  result["samples_redrawn_near_a_kink"] = samples.rejected;
  result["smallest_field_margin"] = smallest_margin;
  result["reference"] = "implicit differentiation through the free fixed point (double precision)";
  return result;
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
  const reference::Gradient parameters = host_tensors(trainer.model().parameters());
  network.weights = parameters.weights;
  network.biases = parameters.biases;
  // Near a bifurcation (a soft mode of the Hessian) a nudge of +-beta moves the
  // state to another minimum and the EP estimate is off by orders of magnitude
  // (seen: a sample whose smallest Hessian eigenvalue was 2.3 beta). Samples whose
  // reference nudged fixed points deviate from the linear response by more than
  // half of it are redrawn (smooth samples deviate by ~beta of it).
  constexpr double kMaxNonlinearity = 0.5;
  double largest_nonlinearity = 0.0;
  const Samples samples = draw_samples(
      config, options, inputs, classes,
      [&](const std::vector<double>& sample, int label) {
        const double nonlinearity =
            oscillator_reference::nudge_nonlinearity(network, sample, label, config.ep.beta, config.dynamics.dt);
        if (!(nonlinearity < kMaxNonlinearity)) return false;
        largest_nonlinearity = std::max(largest_nonlinearity, nonlinearity);
        return true;
      },
      "fewer stay in their basin under a nudge of ep.beta = " + std::to_string(config.ep.beta) + "; lower ep.beta");
  const reference::Gradient engine = engine_gradient(backend, trainer, samples);
  const reference::Gradient exact = oscillator_reference::implicit_gradient(network, samples.xs, samples.labels,
                                                                            config.dynamics.dt);
  nlohmann::json result = report(backend, config, options);
  add_comparison(result, engine, exact);
  result["shil"] = config.oscillator.shil;
  result["input_scale"] = config.oscillator.input_scale;
  result["samples_redrawn_near_a_bifurcation"] = samples.rejected;
  result["largest_nudge_nonlinearity"] = largest_nonlinearity;
  result["reference"] = "implicit differentiation through the free fixed point (Hessian of V, double precision)";
  return result;
}

// The convolutional Hopfield network against models/conv_hopfield_reference.h.
nlohmann::json conv_hopfield_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  Config sized = config;
  sized.training.batch_size = options.samples;
  Trainer trainer(backend, sized);
  const EnergyModel& model = trainer.model();
  const ConvHopfieldShape shape = conv_hopfield_shape(config.model);

  conv_reference::Network network;
  network.in_channels = shape.input.channels;
  network.in_h = shape.input.height;
  network.in_w = shape.input.width;
  for (const ConvLayerSpec& c : shape.convs) network.convs.push_back({c.channels, c.kernel, c.stride, c.padding});
  network.pool = static_cast<int>(shape.pool);
  network.dense = shape.dense;
  network.cost = shape.cost;
  const reference::Gradient parameters = host_tensors(model.parameters());
  network.weights = parameters.weights;
  network.biases = parameters.biases;
  double smallest_margin = 0;
  const Samples samples = draw_away_from_kinks(
      config, options, model.input_size(), model.classes(),
      [&](const std::vector<double>& sample) {
        return conv_reference::kink_margin(network, sample, conv_reference::free_fixed_point(network, sample));
      },
      smallest_margin);
  conv_reference::Network engine = network;
  const reference::Gradient gradient = engine_gradient(backend, trainer, samples);
  engine.weights = gradient.weights;
  engine.biases = gradient.biases;
  const conv_reference::Network exact = conv_reference::finite_difference_gradient(network, samples.xs, samples.labels);

  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < static_cast<int>(engine.weights.size()); ++l)
    tensors.push_back({{"tensor", l},
                       {"cosine", conv_reference::cosine_similarity(engine, exact, l)},
                       {"relative_error", conv_reference::relative_error(engine, exact, l)}});
  nlohmann::json result = report(backend, config, options);
  result["samples_redrawn_near_a_kink"] = samples.rejected;
  result["smallest_field_margin"] = smallest_margin;
  result["conv"] = config.resolved["conv"];
  result["reference"] =
      "central differences of the loss at the free fixed point, naive loops (double precision)";
  result["tensors"] = tensors;
  result["overall"] = {{"cosine", conv_reference::cosine_similarity(engine, exact, -1)},
                       {"relative_error", conv_reference::relative_error(engine, exact, -1)}};
  return result;
}

}  // namespace

nlohmann::json run_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options) {
  if (config.model.kind == "dense_hopfield") return dense_hopfield_gradcheck(backend, config, options);
  if (config.model.kind == "conv_hopfield") return conv_hopfield_gradcheck(backend, config, options);
  if (config.model.kind == "oscillator") return oscillator_gradcheck(backend, config, options);
  if (config.model.kind == "ising")
    throw ConfigError("gradcheck has no reference gradient for model.kind = \"ising\": the loss of binary spins at "
                      "the annealed (near zero temperature) state is flat almost everywhere; the EP estimate is "
                      "checked against the exact finite-temperature gradient in tests/test_ising_network.cpp");
  throw ConfigError("gradcheck has no reference gradient for model.kind = \"" + config.model.kind + "\"");
}

}  // namespace eqprop
