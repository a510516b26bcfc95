// SGD with momentum and L2 weight decay, in PyTorch's convention (no dampening):
//   g <- grad + weight_decay * w;  v <- momentum * v + g;  w <- w - lr * v.
// Keeping the convention of the EP literature's code makes its hyperparameters
// (Laborieux et al. 2021; Scellier et al. 2023) usable as they are.
#pragma once

#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/hostdevice.h"

namespace eqprop {

struct SgdMomentumOp {
  static constexpr Determinism determinism = Determinism::bit_exact;
  float* weights;         // (count)
  float* velocity;        // (count)
  const float* gradient;  // (count) dLoss/dw estimate
  // Read when the op runs, not when it is launched: the trainer points it into the
  // step-parameter block (kernels/step_parameters.h), so the learning rate of a
  // schedule changes without changing the launch.
  const float* learning_rate;
  float momentum;
  float weight_decay;

  EQ_HD void operator()(std::int64_t i) const {
    const float g = gradient[i] + weight_decay * weights[i];
    const float v = momentum * velocity[i] + g;
    velocity[i] = v;
    weights[i] -= *learning_rate * v;
  }
};

}  // namespace eqprop
