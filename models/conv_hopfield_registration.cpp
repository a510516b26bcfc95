// model.kind = "conv_hopfield": conv layers with 2x2 pooling, then dense layers
// (models/conv_hopfield.h), with its `conv` config section.
#include <stdexcept>

#include "kernels/error.h"
#include "models/conv_hopfield.h"
#include "models/conv_hopfield_reference.h"
#include "models/model_registry.h"

namespace eqprop {
namespace {

constexpr Choice<PoolKind> kPools[] = {{"max", PoolKind::max}, {"avg", PoolKind::avg}, {"none", PoolKind::none}};
constexpr Choice<NudgedCouplings> kNudgedCouplings[] = {{"auto", NudgedCouplings::automatic},
                                                         {"direct", NudgedCouplings::direct},
                                                         {"from_reference", NudgedCouplings::from_reference}};

// The `conv` section: the conv stack in front of model.layers' dense layers.
struct ConvOptions {
  PlaneShape input;
  std::vector<ConvLayerSpec> convs;
  PoolKind pool = PoolKind::max;
  std::vector<SkipSpec> skips;
  NudgedCouplings nudged_couplings = NudgedCouplings::automatic;
};

// kernel, stride and padding hold one entry per conv layer; a single entry applies
// to every layer.
std::any parse_options(const nlohmann::json& resolved, const std::string& source) {
  const nlohmann::json& section = resolved.at("conv");
  const auto input_shape = section.at("input_shape").get<std::vector<int>>();
  if (input_shape.size() != 3)
    throw ConfigError(source + ": conv.input_shape must be [channels, height, width], got " +
                      std::to_string(input_shape.size()) + " entries");
  ConvOptions options;
  options.input = {input_shape[0], input_shape[1], input_shape[2]};
  const auto channels = section.at("channels").get<std::vector<int>>();
  std::vector<int> per_layer[3];
  const char* names[3] = {"kernel", "stride", "padding"};
  for (int k = 0; k < 3; ++k) {
    per_layer[k] = section.at(names[k]).get<std::vector<int>>();
    if (per_layer[k].size() == 1) per_layer[k].resize(channels.size(), per_layer[k].front());
    if (per_layer[k].size() != channels.size())
      throw ConfigError(source + ": conv." + names[k] + " has " + std::to_string(per_layer[k].size()) +
                        " entries but conv.channels has " +
                        std::to_string(channels.size()) + " conv layers (give one entry, or one per layer)");
  }
  for (std::size_t l = 0; l < channels.size(); ++l)
    options.convs.push_back({channels[l], per_layer[0][l], per_layer[1][l], per_layer[2][l]});
  options.pool = choice_value(kPools, section.at("pool"), source + ": conv.pool");
  for (const auto& pair : section.at("skips").get<std::vector<std::vector<int>>>())
    options.skips.push_back({pair[0], pair[1]});
  if (section.contains("nudged_couplings"))  // the conv_hopfield kind's key, not the borrowers'
    options.nudged_couplings =
        choice_value(kNudgedCouplings, section.at("nudged_couplings"), source + ": conv.nudged_couplings");
  return options;
}

// The conv network a model config describes, not yet validated.
ConvHopfieldShape conv_hopfield_shape(const ModelConfig& model) {
  const auto& options = model_options<ConvOptions>(model);
  ConvHopfieldShape shape;
  shape.input = options.input;
  shape.convs = options.convs;
  shape.pool = options.pool;
  shape.skips = options.skips;
  shape.dense = model.layers;
  shape.cost = model.cost;
  shape.activation_max = model.activation_max;
  return shape;
}

void check_rules(const ModelRulesInput& in) {
  try {
    conv_hopfield_shape(in.model).validate();
  } catch (const std::invalid_argument& error) {
    throw ConfigError(in.source + ": " + error.what());
  }
}

// Against central differences of the converged free-phase loss
// (models/conv_hopfield_reference.h, which also draws the max-pooling ties into
// the kink margin).
std::unique_ptr<GradcheckReference> make_conv_hopfield_gradcheck(const GradcheckSetup& setup) {
  return reference_gradcheck(
      setup.beta, "central differences of the loss at the free fixed point, naive loops (double precision)",
      conv_reference::network_of(conv_hopfield_shape(setup.model)), setup.parameters,
      [](const conv_reference::Network& n, const std::vector<double>& sample) {
        return conv_reference::kink_margin(n, sample, conv_reference::free_fixed_point(n, sample));
      },
      [](const conv_reference::Network& n, const std::vector<std::vector<double>>& xs, const std::vector<int>& labels) {
        return conv_reference::finite_difference_gradient(n, xs, labels);
      });
}

}  // namespace

// The conv stack of the `conv` section (input, conv layers, pooling; no dense
// layers), for the kinds that borrow the section (models/conv_predictive_coding_registration.cpp).
ConvHopfieldShape conv_section_shape(const nlohmann::json& resolved, const std::string& source) {
  const auto options = std::any_cast<ConvOptions>(parse_options(resolved, source));
  ConvHopfieldShape shape;
  shape.input = options.input;
  shape.convs = options.convs;
  shape.pool = options.pool;
  shape.skips = options.skips;
  return shape;
}

ModelKind conv_hopfield_kind() {
  ModelKind kind;
  kind.name = "conv_hopfield";
  kind.capturable_step = true;  // no host reads in a step (tests/test_counting_backend.cpp)
  kind.help = "conv layers with 2x2 pooling (the `conv` section) then the dense layers of model.layers "
              "(Laborieux et al. 2021)";
  kind.keys = {
      {"conv.input_shape", ConfigValueType::integer_list, nlohmann::json::array({1, 28, 28}), 1, 1 << 16, false, {},
       "conv_hopfield: one sample's [channels, height, width]; their product is the data's sample size "
       "(NCHW, per sample contiguous)."},
      {"conv.channels", ConfigValueType::integer_list, nlohmann::json::array({16, 32}), 1, 1 << 16, false, {},
       "conv_hopfield: output channels of each conv layer, input side first."},
      {"conv.kernel", ConfigValueType::integer_list, nlohmann::json::array({3}), 1, 64, false, {},
       "conv_hopfield: square kernel size of each conv layer, or one for all."},
      {"conv.stride", ConfigValueType::integer_list, nlohmann::json::array({1}), 1, 64, false, {},
       "conv_hopfield: stride of each conv layer, or one for all."},
      {"conv.padding", ConfigValueType::integer_list, nlohmann::json::array({1}), 0, 64, false, {},
       "conv_hopfield: zero padding of each conv layer, or one for all."},
      choice_key("conv.pool", kPools,
                 "conv_hopfield: 2x2 stride-2 pooling after every conv layer (`max`: through the argmax of the "
                 "current state; `avg`: the window mean) or none. Pooled sizes must be even."),
      {"conv.skips", ConfigValueType::integer_pairs, nlohmann::json::array(), 0, 1 << 16, false, {},
       "conv_hopfield: skip couplings [from, to] between planes of the conv stack (0 the input, k the output "
       "of conv layer k, from <= to - 2), each a learned 1x1 convolution whose stride is the ratio of the "
       "two planes' sizes, as in a residual Hopfield network (Hopfield-ResNet13)."},
      choice_key("conv.nudged_couplings", kNudgedCouplings,
                 "conv_hopfield: how nudged phases compute the chain's fields, and the update its phases feed. "
                 "`from_reference`: each convolution or dense product as L(r) + L(s - r), r the state the batch's "
                 "first nudged phase starts from and L(r) computed once per batch; the update from the phases' "
                 "differences. Equal in exact arithmetic, and a bf16 product's rounding then scales with the "
                 "O(beta) differences EP measures. `direct`: from the states, as the free phase. `auto`: "
                 "from_reference with bf16 or tf32 products (training.gemm_precision), direct in fp32."),
  };
  kind.reported_sections = {"conv"};
  // model.layers are the dense layers after the conv stack: at least the output.
  kind.minimum_layers = [](CostKind) { return std::size_t(1); };
  kind.parse_options = parse_options;
  kind.check = check_rules;
  kind.clipped_activation = true;
  kind.weight_tensors = weight_tensors_known_when_built;
  kind.make = [](Backend& backend, const ModelConfig& model, int max_batch) -> std::unique_ptr<EnergyModel> {
    auto made = std::make_unique<ConvHopfield>(backend, conv_hopfield_shape(model), max_batch);
    made->set_nudged_couplings(model_options<ConvOptions>(model).nudged_couplings);
    return made;
  };
  kind.implicit_gradient = true;
  kind.gradcheck = make_conv_hopfield_gradcheck;
  return kind;
}

}  // namespace eqprop
