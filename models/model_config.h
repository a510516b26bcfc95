// The `model` section of a run config: which registered kind (models/model_registry.h)
// and the keys every kind shares, with the kind's own typed options.
#pragma once

#include <any>
#include <string>
#include <vector>

#include "kernels/hard_sigmoid.h"
#include "kernels/row_metrics.h"

namespace eqprop {

// How a model with a fused relaxation (one launch per phase, e.g. models/dense_hopfield.h)
// relaxes (training.relaxation_path): `fused` wherever the phase allows it, `gemm`
// (a GEMM launch per coupling and an elementwise launch per layer, every step), or
// `automatic`: fused only where it was measured faster (perf/relaxation_path_crossover.sh).
enum class RelaxationPath { automatic, fused, gemm };

struct ModelConfig {
  std::string kind;  // a registered kind's name
  // Layer sizes: input, hidden..., output for most kinds; the dense layers after
  // the conv stack (hidden..., output) for conv_hopfield.
  std::vector<int> layers = {784, 500, 10};
  CostKind cost = CostKind::mse;
  float init_gain = 1.0f;
  // c of the activation rho = clip(s, 0, c) (model.activation; kernels/hard_sigmoid.h):
  // 1, the hard sigmoid, or model.activation_max for the clipped ReLU.
  float activation_max = kHardSigmoidMax;
  RelaxationPath relaxation_path = RelaxationPath::automatic;  // training.relaxation_path
  std::any options;  // what the kind's parse_options returned (empty: none)
};

}  // namespace eqprop
