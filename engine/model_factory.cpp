#include "engine/model_factory.h"

#include "kernels/error.h"
#include "models/dense_hopfield.h"
#include "models/oscillator_network.h"

namespace eqprop {

std::unique_ptr<EnergyModel> make_model(Backend& backend, const Config& config, int max_batch) {
  const ModelConfig& model = config.model;
  if (model.kind == "dense_hopfield")
    return std::make_unique<DenseHopfield>(backend, DenseHopfieldShape{model.layers, model.cost}, max_batch);
  if (model.kind == "oscillator")
    return std::make_unique<OscillatorNetwork>(
        backend, OscillatorShape{model.layers, config.oscillator.shil, config.oscillator.input_scale}, max_batch);
  throw ConfigError("model.kind = \"" + model.kind + "\" is not a model this build knows");
}

}  // namespace eqprop
