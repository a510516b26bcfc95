// The `model` section of a run config: which registered kind (models/model_registry.h)
// and the keys every kind shares, with the kind's own typed options.
#pragma once

#include <any>
#include <string>
#include <vector>

#include "kernels/row_metrics.h"

namespace eqprop {

struct ModelConfig {
  std::string kind;  // a registered kind's name
  // Layer sizes: input, hidden..., output for most kinds; the dense layers after
  // the conv stack (hidden..., output) for conv_hopfield.
  std::vector<int> layers = {784, 500, 10};
  CostKind cost = CostKind::mse;
  float init_gain = 1.0f;
  std::any options;  // what the kind's parse_options returned (empty: none)
};

}  // namespace eqprop
