#include "engine/model_factory.h"

#include "kernels/error.h"
#include "models/dense_hopfield.h"
#include "models/oscillator_network.h"
#include "models/ising_network.h"

namespace eqprop {

ConvHopfieldShape conv_hopfield_shape(const ModelConfig& model) {
  const ConvConfig& conv = model.conv;
  ConvHopfieldShape shape;
  shape.input = {conv.input_shape.at(0), conv.input_shape.at(1), conv.input_shape.at(2)};
  for (std::size_t k = 0; k < conv.channels.size(); ++k)
    shape.convs.push_back({conv.channels[k], conv.kernel.at(k), conv.stride.at(k), conv.padding.at(k)});
  shape.pool = conv.pool == "avg" ? PoolKind::avg : conv.pool == "none" ? PoolKind::none : PoolKind::max;
  shape.dense = model.layers;
  shape.cost = model.cost;
  return shape;
}

std::unique_ptr<EnergyModel> make_model(Backend& backend, const Config& config, int max_batch) {
  const ModelConfig& model = config.model;
  if (model.kind == "dense_hopfield")
    return std::make_unique<DenseHopfield>(backend, DenseHopfieldShape{model.layers, model.cost}, max_batch);
  if (model.kind == "oscillator")
    return std::make_unique<OscillatorNetwork>(
        backend, OscillatorShape{model.layers, config.oscillator.shil, config.oscillator.input_scale}, max_batch);
  if (model.kind == "ising") {
    const IsingConfig& ising = config.ising;
    IsingNetworkShape shape{model.layers, ising.spins_per_class, ising.replicas};
    IsingDynamics dynamics{ising.temperature_start, ising.temperature_end,
                           ising.metropolis ? SpinUpdate::metropolis : SpinUpdate::gibbs,
                           ising.dsb ? IsingRelaxation::dsb : IsingRelaxation::annealing};
    return std::make_unique<IsingNetwork>(backend, shape, dynamics, max_batch);
  }
  if (model.kind == "conv_hopfield")
    return std::make_unique<ConvHopfield>(backend, conv_hopfield_shape(model), max_batch);
  throw ConfigError("model.kind = \"" + model.kind + "\" is not a model this build knows");
}

}  // namespace eqprop
