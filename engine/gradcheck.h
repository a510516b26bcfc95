// The test of everything (DESIGN.md §1): on a small network, the EP update computed
// by the engine on a backend against the exact loss gradient obtained by implicit
// differentiation through the free fixed point (models/dense_hopfield_reference,
// double precision, no shared code). Reported per weight tensor (weights and
// biases together) as cosine similarity and relative error.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "kernels/backend.h"

namespace eqprop {

struct GradcheckOptions {
  // Batch of random inputs x ~ U(0, 1) with random labels. Samples whose free
  // fixed point has a unit's field within 2 * beta of a kink of the hard sigmoid
  // (0 or 1) are redrawn: the loss has no gradient there.
  int samples = 8;
  // A checkpoint directory whose parameters replace the config's initial ones, so
  // that the EP estimate of trained weights can be checked (its shapes must match
  // the config); empty: the initial parameters of config.seed.
  std::string checkpoint;
  // Candidate samples taken in order instead of random inputs, e.g. test images
  // normalised as in training, for trained weights whose units random inputs
  // would saturate: (count, input size) and one label each. Unusable ones are
  // skipped as random ones are redrawn.
  std::vector<float> candidates;
  std::vector<int> candidate_labels;
};

// Compares with the exact gradient of model.kind's GradcheckReference
// (models/model_registry.h; e.g. implicit differentiation for the dense network,
// central differences of the converged free-phase loss for the conv network);
// ConfigError for a kind without one.
// JSON: {"backend", "model", "layers", "cost", "beta", "nudging", "integrator", "t_free",
// "t_nudge", "samples", "samples_redrawn_near_a_kink", "smallest_field_margin",
// "tensors": [{"tensor", "cosine", "relative_error"}...],
// "overall": {"cosine", "relative_error"}}
nlohmann::json run_gradcheck(Backend& backend, const Config& config, const GradcheckOptions& options);

}  // namespace eqprop
